#!/usr/bin/env python
"""onnxruntime vs eager PyTorch for the exported Swin-T backbone on CPU (224² and 800×1216, batch 1).

    python tools/benchmark_export.py --rounds 10 --threads 2
"""
import argparse
import sys

from swin_scratch.benchmark.export import onnxruntime_vs_eager


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"median ms per forward, {args.threads} threads, {args.rounds} interleaved rounds")
    print(onnxruntime_vs_eager(rounds=args.rounds, threads=args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
