"""COCO evaluation: saved results or live detectron2 predictions → summary, per-category table, plots.

``SwinCOCOEvaluator`` and ``dataset_ground_truth`` need detectron2 and are imported on first use,
so evaluating a results file does not import torch/detectron2.
"""
from typing import Any

from .backends import BACKENDS, check_backend
from .coco_eval import (
    evaluate_coco_results,
    format_per_category_table,
    format_summary,
    per_category_table,
    summary_from_stats,
    write_report,
)
from .inputs import EvaluationInputError, find_results_file, load_ground_truth, load_results
from .result import SUMMARY_NAMES, CategoryAP, CocoEvalResult

_DETECTRON2_NAMES = ("SwinCOCOEvaluator", "dataset_ground_truth")


def __getattr__(name: str) -> Any:
    if name in _DETECTRON2_NAMES:
        from . import d2_evaluator

        return getattr(d2_evaluator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "SUMMARY_NAMES",
    "CategoryAP",
    "CocoEvalResult",
    "EvaluationInputError",
    "SwinCOCOEvaluator",
    "check_backend",
    "dataset_ground_truth",
    "evaluate_coco_results",
    "find_results_file",
    "format_per_category_table",
    "format_summary",
    "load_ground_truth",
    "load_results",
    "per_category_table",
    "summary_from_stats",
    "write_report",
]
