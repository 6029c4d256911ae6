#!/usr/bin/env python
"""Mask R-CNN Swin-T FPN vs detectron2's Mask R-CNN R50-FPN on CPU: inference latency at 800 x 1216,
training-step time (interleaved in one run) and training peak memory.

    python tools/benchmark_detection.py --rounds 3 --threads 2
"""
import sys

from swin_scratch.benchmark.detection import main

if __name__ == "__main__":
    sys.exit(main())
