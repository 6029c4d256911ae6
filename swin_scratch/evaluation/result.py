"""What one COCO evaluation produced: the summary names, the per-category rows and the result.

Its own module so that the code that computes results (:mod:`.coco_eval`) and the code that draws
them (:mod:`.plots`) both depend on it, and not on each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# COCOeval.stats order; AP/AR in 0-100 like detectron2. s/m/l: area < 32², < 96², above.
SUMMARY_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
DETECTRON2_METRICS = SUMMARY_NAMES[:6]  # what detectron2's COCOEvaluator reports for bbox/segm


@dataclass
class CategoryAP:
    """One row of the per-category table; AP values in 0-100, NaN when the category has no ground truth."""

    category_id: int
    name: str
    ap: float
    ap50: float
    ap75: float
    num_gt: int  # non-crowd ground-truth instances in the evaluated images
    num_detections: int


@dataclass
class CocoEvalResult:
    """Everything one IoU type's evaluation produced that reports and plots need."""

    iou_type: str
    backend: str
    summary: dict[str, float]  # SUMMARY_NAMES → 0-100, NaN where COCO reports -1 (no GT in that range)
    per_category: list[CategoryAP]  # worst AP first; categories without ground truth last
    precision: np.ndarray = field(repr=False)  # (T iou thresholds, R recall points, K categories), area all, 100 dets
    iou_thresholds: np.ndarray = field(repr=False)  # (T,)
    recall_thresholds: np.ndarray = field(repr=False)  # (R,)
    category_ids: list[int] = field(repr=False)  # the K axis of ``precision``
    num_images: int = 0
    num_detections: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN → null); the precision array is left to the plots."""
        return {
            "iou_type": self.iou_type,
            "backend": self.backend,
            "num_images": self.num_images,
            "num_detections": self.num_detections,
            "summary": {name: _json_float(value) for name, value in self.summary.items()},
            "per_category": [
                {key: _json_float(value) if isinstance(value, float) else value for key, value in vars(row).items()}
                for row in self.per_category
            ],
        }

    def detectron2_metrics(self) -> dict[str, float]:
        """detectron2's result format: ``AP, AP50, ..., APl`` and ``AP-<class>`` for every category."""
        metrics = {name: self.summary[name] for name in DETECTRON2_METRICS}
        by_id = {row.category_id: row for row in self.per_category}
        metrics.update({f"AP-{by_id[cid].name}": by_id[cid].ap for cid in self.category_ids})
        return metrics


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value
