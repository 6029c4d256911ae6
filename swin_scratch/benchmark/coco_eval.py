"""An interleaved timing of the two COCO evaluation backends on the same detections.

Used by ``tools/benchmark_coco_eval.py``; the data comes from :mod:`swin_scratch.coco.synthetic`.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Sequence

from swin_scratch.evaluation.coco_eval import evaluate_coco_results
from swin_scratch.evaluation.result import SUMMARY_NAMES, CocoEvalResult


@dataclass
class BackendTiming:
    """Seconds per full evaluation (validate, index, match, accumulate) of one IoU type."""

    iou_type: str
    seconds: dict[str, list[float]]  # backend → one entry per repeat

    def median(self, backend: str) -> float:
        return statistics.median(self.seconds[backend])


def max_summary_difference(a: CocoEvalResult, b: CocoEvalResult) -> float:
    """Largest |difference| of the 12 summary numbers (0-100 scale); NaN on both sides counts as equal."""
    diffs = [
        0.0 if (math.isnan(a.summary[n]) and math.isnan(b.summary[n])) else abs(a.summary[n] - b.summary[n])
        for n in SUMMARY_NAMES
    ]
    return max(diffs)


def time_backends(
    dataset: dict,
    detections: list[dict],
    iou_types: Sequence[str] = ("bbox", "segm"),
    backends: Sequence[str] = ("pycocotools", "faster"),
    repeats: int = 3,
) -> tuple[list[BackendTiming], dict[str, float]]:
    """Time each backend on each IoU type, interleaved (A B A B ...) so machine load hits both alike.

    Returns the timings and, per IoU type, the largest summary difference between the backends.
    """
    timings = [BackendTiming(iou_type, {backend: [] for backend in backends}) for iou_type in iou_types]
    last: dict[tuple[str, str], CocoEvalResult] = {}
    for _ in range(repeats):
        for timing in timings:
            for backend in backends:
                start = time.perf_counter()
                result = evaluate_coco_results(dataset, detections, [timing.iou_type], backend=backend)
                timing.seconds[backend].append(time.perf_counter() - start)
                last[timing.iou_type, backend] = result[timing.iou_type]
    differences = {
        iou_type: max(max_summary_difference(last[iou_type, backends[0]], last[iou_type, b]) for b in backends)
        for iou_type in iou_types
    }
    return timings, differences
