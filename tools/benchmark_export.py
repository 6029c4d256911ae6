#!/usr/bin/env python
"""onnxruntime vs eager PyTorch for the exported Swin-T backbone on CPU (224² and 800×1216, batch 1).

    python tools/benchmark_export.py --rounds 10 --threads 2 --markdown   # -> docs/benchmarks/<machine>.md
    python tools/benchmark_export.py --profile      # time per operator type, onnxruntime and eager

Each onnxruntime session (graph optimization levels basic, extended, all) is verified against eager
PyTorch before it is timed.
"""
import argparse
import sys

from swin_scratch.benchmark.export import onnxruntime_vs_eager, operator_profiles
from swin_scratch.benchmark.machine import describe_load, describe_machine
from swin_scratch.benchmark.timing import MACHINE_FILE, emit_report
from swin_scratch.memory import reuse_freed_memory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", nargs="?", const=MACHINE_FILE, metavar="FILE.md",
                        help="also write the report to FILE.md; without a file, into its section of "
                             "docs/benchmarks/<machine>.md")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: where each runtime spends an 800×1216 forward, by operator type")
    args = parser.parse_args(argv)
    reuse_freed_memory()
    machine = describe_machine(args.threads)
    print(machine.line(), flush=True)
    if args.profile:
        report = f"{machine.line()}\n\n{operator_profiles(threads=args.threads)}\n"
    else:
        report = (f"{machine.line()}\n\nmedian ms per forward, {args.rounds} interleaved rounds\n\n"
                  f"{onnxruntime_vs_eager(rounds=args.rounds, threads=args.threads)}\n")
    report += f"\nload average (1 min) at the end: {describe_load()}\n"
    emit_report(report, args.markdown, machine, "onnxruntime profile" if args.profile else "onnxruntime vs eager")
    return 0


if __name__ == "__main__":
    sys.exit(main())
