"""Pictures of a :class:`~.result.CocoEvalResult`: precision-recall curves and per-category AP bars.

Figures are built with ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state), so plotting
works on headless machines and inside a training process without touching the global backend.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .result import CocoEvalResult


def _mean_over_valid(precision: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """Mean over ``axis`` ignoring COCO's -1 entries (categories without ground truth)."""
    valid = precision > -1
    total = np.where(valid, precision, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def overall_pr_curves(result: CocoEvalResult) -> dict[str, np.ndarray]:
    """Category-averaged precision at each recall point, for IoU 0.50, 0.75 and the 0.50:0.95 mean.

    The mean of each curve over the recall points is AP50, AP75 and AP respectively.
    """
    precision = result.precision  # (T, R, K)
    iou50 = int(np.argmin(np.abs(result.iou_thresholds - 0.5)))
    iou75 = int(np.argmin(np.abs(result.iou_thresholds - 0.75)))
    return {
        "IoU=0.50:0.95": _mean_over_valid(precision.transpose(1, 0, 2), axis=(1, 2)),  # (R,)
        "IoU=0.50": _mean_over_valid(precision[iou50], axis=(1,)),
        "IoU=0.75": _mean_over_valid(precision[iou75], axis=(1,)),
    }


def plot_pr_curves(result: CocoEvalResult, path: str | os.PathLike, worst_n: int = 5) -> Path:
    """Left: overall PR curves; right: the ``worst_n`` lowest-AP categories (IoU 0.50:0.95 mean)."""
    recall = result.recall_thresholds
    fig = Figure(figsize=(11, 4.5), dpi=90)
    overall, worst = fig.subplots(1, 2)

    ap_keys = {"IoU=0.50:0.95": "AP", "IoU=0.50": "AP50", "IoU=0.75": "AP75"}
    for label, curve in overall_pr_curves(result).items():
        overall.plot(recall, curve, label=f"{label} ({ap_keys[label]} {result.summary[ap_keys[label]]:.1f})")
    overall.set_title(f"{result.iou_type}: all categories ({result.num_images} images)")

    position = {cid: k for k, cid in enumerate(result.category_ids)}
    rows = [row for row in result.per_category if not math.isnan(row.ap)][:worst_n]
    for row in rows:
        curve = _mean_over_valid(result.precision[:, :, position[row.category_id]], axis=(0,))
        worst.plot(recall, curve, label=f"{row.name} (AP {row.ap:.1f}, {row.num_gt} GT)")
    worst.set_title(f"{result.iou_type}: {len(rows)} worst categories, IoU=0.50:0.95 mean")

    for ax in (overall, worst):
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"COCO precision-recall, backend {result.backend}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_per_category_ap(result: CocoEvalResult, path: str | os.PathLike) -> Path:
    """Horizontal bars of AP (and AP50 behind it) per category, worst at the top."""
    rows = [row for row in result.per_category if not math.isnan(row.ap)]
    no_gt = len(result.per_category) - len(rows)
    fig = Figure(figsize=(7, 1.5 + 0.25 * max(len(rows), 1)), dpi=90)
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y, [row.ap50 for row in rows], color="#aec7e8", label="AP50")
    ax.barh(y, [row.ap for row in rows], color="#1f77b4", label="AP (0.50:0.95)")
    for yi, row in zip(y, rows):
        ax.text(max(row.ap, row.ap50) + 1, yi, f"{row.ap:.1f} / {row.ap50:.1f}", va="center", fontsize=7)
    ax.set_yticks(y, [row.name for row in rows], fontsize=8)
    ax.invert_yaxis()  # worst first, at the top
    ax.set_xlim(0, 118)
    ax.set_xlabel("AP (0-100); numbers: AP / AP50")
    suffix = f"; {no_gt} categories without ground truth not shown" if no_gt else ""
    ax.set_title(f"{result.iou_type} AP per category (overall AP {result.summary['AP']:.1f}){suffix}", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
