#!/usr/bin/env python
"""onnxruntime vs eager PyTorch for the exported Swin-T backbone on CPU (224² and 800×1216, batch 1).

    python tools/benchmark_export.py --rounds 10 --threads 2
    python tools/benchmark_export.py --profile      # time per operator type, onnxruntime and eager
"""
import argparse
import sys
from pathlib import Path

from swin_scratch.benchmark.export import onnxruntime_vs_eager, operator_profiles
from swin_scratch.benchmark.machine import describe_machine
from swin_scratch.benchmark.timing import emit_report
from swin_scratch.memory import reuse_freed_memory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", type=Path, metavar="FILE.md", help="also write the report here")
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
    emit_report(report, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
