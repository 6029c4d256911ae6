#!/usr/bin/env python
"""Print how long a training run took and how fast it went, after the machine line (CPU, ISA, threads).

    python tools/training_speed.py output/swin_shapes

The times come from OUTPUT_DIR/log.txt (detectron2's own end-of-training record; a resumed run adds
its sessions). The machine line is measured now, in this process: run it in the environment the
training ran in (same machine, same OMP_NUM_THREADS / CPU affinity), as `make demo` does.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from swin_scratch.benchmark.machine import describe_machine
from swin_scratch.benchmark.training_speed import TrainingLogError, read_training_speed, training_speed_report
from swin_scratch.memory import reuse_freed_memory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="OUTPUT_DIR", help="training output folder holding log.txt")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads the training used, if not this process's default")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        speed = read_training_speed(args.run)
    except TrainingLogError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    reuse_freed_memory()  # the allocator policy train_net runs under (SWIN_SCRATCH_MALLOC alike), named in the line
    print(training_speed_report(speed, describe_machine(args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
