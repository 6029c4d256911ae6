"""COCO evaluation of saved results → summary, per-category table, JSON/CSV and plots.

No torch or detectron2 here: the trainer's evaluator on top of it is
:class:`swin_scratch.detection.evaluator.SwinCOCOEvaluator`.
"""
from swin_scratch.coco.inputs import EvaluationInputError, find_results_file, load_ground_truth, load_results

from .backends import BACKENDS, check_backend
from .coco_eval import (
    evaluate_coco_results,
    format_per_category_table,
    format_summary,
    per_category_table,
    summary_from_stats,
    write_report,
)
from .result import SUMMARY_NAMES, CategoryAP, CocoEvalResult

__all__ = [
    "BACKENDS",
    "SUMMARY_NAMES",
    "CategoryAP",
    "CocoEvalResult",
    "EvaluationInputError",
    "check_backend",
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
