#!/usr/bin/env python
"""Swin-T forward speed vs torchvision's swin_t and timm's swin_tiny_patch4_window7_224 (CPU, fp32,
inference mode, interleaved), and the activation-checkpointing memory saving.

    python tools/benchmark.py --rounds 10 --threads 2
    python tools/benchmark.py --memory-only
"""
import argparse
import sys

from swin_scratch.benchmark.swin import memory_table, speed_table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-size", type=int, default=1024)
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.memory_only:
        print(f"Speed: median ms per forward, {args.threads} threads, {args.rounds} interleaved rounds")
        print(speed_table(args.rounds, args.threads))
    if not args.speed_only:
        print()
        print(memory_table(args.memory_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
