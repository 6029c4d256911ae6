#!/usr/bin/env python
"""Time pycocotools against faster-coco-eval on synthetic COCO data and check they agree.

    python tools/benchmark_coco_eval.py                       # 500 images, ~3.5k GT boxes, ~4k detections
    python tools/benchmark_coco_eval.py --images 2000 --repeats 5 --iou-type bbox
    python tools/benchmark_coco_eval.py --images 200 --categories 8 --save-data /tmp/synthetic --repeats 1
        # also writes gt.json and results.json there, to try tools/evaluate.py on

Each repeat runs every backend once per IoU type, interleaved, so load on the machine affects
both alike; the table gives median seconds of a full evaluation and the speed-up.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from swin_scratch.benchmark.coco_eval import time_backends
from swin_scratch.benchmark.machine import describe_machine
from swin_scratch.coco.synthetic import jittered_detections, make_synthetic_coco
from swin_scratch.evaluation import EvaluationInputError, check_backend


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iou-type", nargs="+", choices=("bbox", "segm"), default=["bbox", "segm"], dest="iou_types")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-data", metavar="DIR", help="also write the synthetic gt.json and results.json here")
    args = parser.parse_args(argv)
    try:
        check_backend("faster")
    except EvaluationInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    print(describe_machine().line())
    dataset = make_synthetic_coco(args.images, args.categories, seed=args.seed)
    detections = jittered_detections(dataset, seed=args.seed, with_masks="segm" in args.iou_types)
    if args.save_data:
        out = Path(args.save_data)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gt.json").write_text(json.dumps(dataset))
        (out / "results.json").write_text(json.dumps(detections))
        print(f"wrote {out / 'gt.json'} and {out / 'results.json'}")
    print(f"synthetic COCO: {len(dataset['images'])} images, {len(dataset['annotations'])} GT boxes, "
          f"{args.categories} categories, {len(detections)} detections; {args.repeats} repeats, interleaved")
    timings, differences = time_backends(dataset, detections, args.iou_types, repeats=args.repeats)

    print("\n| IoU type | pycocotools (s, median) | faster-coco-eval (s, median) | speed-up | max summary diff |")
    print("|---|---:|---:|---:|---:|")
    for timing in timings:
        slow, fast = timing.median("pycocotools"), timing.median("faster")
        print(f"| {timing.iou_type} | {slow:.3f} | {fast:.3f} | {slow / fast:.1f}x | "
              f"{differences[timing.iou_type]:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
