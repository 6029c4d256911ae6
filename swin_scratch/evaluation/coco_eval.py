"""COCO evaluation of saved results: 12-number summary, per-category AP table, JSON/CSV/PNG report.

One code path for ``tools/evaluate.py`` and for :class:`swin_scratch.detection.evaluator.SwinCOCOEvaluator` (what
``tools/train_net.py`` evaluates with), so the numbers in both are computed the same way.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from swin_scratch.coco.inputs import (
    EvaluationInputError,
    infer_iou_types,
    load_results,
    read_json,
    validate_ground_truth,
    validate_results,
)

from .backends import check_backend, is_backend_coco, load_coco_gt, run_cocoeval
from .result import SUMMARY_NAMES, CategoryAP, CocoEvalResult

# (metric, IoU range, area, maxDets) of each stat, to print pycocotools' standard 12 lines.
_SUMMARY_LINES = (
    ("AP", "0.50:0.95", "all", 100),
    ("AP", "0.50", "all", 100),
    ("AP", "0.75", "all", 100),
    ("AP", "0.50:0.95", "small", 100),
    ("AP", "0.50:0.95", "medium", 100),
    ("AP", "0.50:0.95", "large", 100),
    ("AR", "0.50:0.95", "all", 1),
    ("AR", "0.50:0.95", "all", 10),
    ("AR", "0.50:0.95", "all", 100),
    ("AR", "0.50:0.95", "small", 100),
    ("AR", "0.50:0.95", "medium", 100),
    ("AR", "0.50:0.95", "large", 100),
)


def summary_from_stats(stats: Sequence[float]) -> dict[str, float]:
    """Name COCOeval's 12 stats and scale them to 0-100; COCO's -1 ("no ground truth") becomes NaN."""
    if len(stats) < len(SUMMARY_NAMES):
        raise ValueError(f"expected {len(SUMMARY_NAMES)} COCO stats, got {len(stats)}")
    return {name: float(s) * 100.0 if s >= 0 else float("nan") for name, s in zip(SUMMARY_NAMES, stats)}


def _mean_valid(precision: np.ndarray) -> float:
    """COCO's averaging: mean over entries > -1 (-1 marks "no ground truth"), in 0-100."""
    valid = precision[precision > -1]
    return float(np.mean(valid)) * 100.0 if valid.size else float("nan")


def per_category_table(coco_eval: Any) -> list[CategoryAP]:
    """Per-category AP / AP50 / AP75 from an accumulated ``COCOeval`` (either backend), worst first.

    Reads ``coco_eval.eval["precision"]`` of shape (T iou, R recall, K category, A area, M maxDets)
    at area "all" and the largest maxDets, exactly as ``summarize()`` does for the overall AP.
    """
    params = coco_eval.params
    precision = np.asarray(coco_eval.eval["precision"])[:, :, :, 0, -1]  # (T, R, K)
    iou_thresholds = np.asarray(params.iouThrs)
    iou50 = int(np.argmin(np.abs(iou_thresholds - 0.5)))
    iou75 = int(np.argmin(np.abs(iou_thresholds - 0.75)))
    image_ids = set(params.imgIds)
    num_gt = Counter(
        ann["category_id"]
        for ann in coco_eval.cocoGt.dataset["annotations"]
        if ann["image_id"] in image_ids and not ann.get("iscrowd", 0)
    )
    num_dets = Counter(
        ann["category_id"] for ann in coco_eval.cocoDt.dataset["annotations"] if ann["image_id"] in image_ids
    )
    rows = []
    for k, category_id in enumerate(params.catIds):
        category_id = int(category_id)
        rows.append(
            CategoryAP(
                category_id=category_id,
                name=str(coco_eval.cocoGt.cats[category_id]["name"]),
                ap=_mean_valid(precision[:, :, k]),
                ap50=_mean_valid(precision[iou50, :, k]),
                ap75=_mean_valid(precision[iou75, :, k]),
                num_gt=num_gt[category_id],
                num_detections=num_dets[category_id],
            )
        )
    return sort_worst_first(rows)


def sort_worst_first(rows: list[CategoryAP]) -> list[CategoryAP]:
    """Lowest AP first (where the model fails), then by name; categories without ground truth last."""
    return sorted(rows, key=lambda row: (math.isnan(row.ap), 0.0 if math.isnan(row.ap) else row.ap, row.name))


def result_from_cocoeval(coco_eval: Any, backend: str, num_detections: int) -> CocoEvalResult:
    """Package an accumulated+summarized ``COCOeval`` as a :class:`CocoEvalResult`."""
    params = coco_eval.params
    return CocoEvalResult(
        iou_type=params.iouType,
        backend=backend,
        summary=summary_from_stats(coco_eval.stats),
        per_category=per_category_table(coco_eval),
        precision=np.array(coco_eval.eval["precision"])[:, :, :, 0, -1],
        iou_thresholds=np.array(params.iouThrs),
        recall_thresholds=np.array(params.recThrs),
        category_ids=[int(c) for c in params.catIds],
        num_images=len(params.imgIds),
        num_detections=num_detections,
    )


def evaluate_coco_results(
    ground_truth: str | os.PathLike | dict | Any,
    results: str | os.PathLike | Sequence[dict],
    iou_types: Sequence[str] | None = None,
    backend: str = "pycocotools",
    output_dir: str | os.PathLike | None = None,
    *,
    img_ids: Sequence[int] | None = None,
) -> dict[str, CocoEvalResult]:
    """Evaluate COCO-format detections against COCO ground truth.

    Args:
        ground_truth: an ``instances_*.json`` path, its loaded dict, or a ``COCO`` object of either
            backend (a matching one is reused, e.g. detectron2's ``COCOEvaluator._coco_api``).
        results: a ``coco_instances_results.json`` path or the list of detection dicts
            (``image_id``, ``category_id``, ``score``, ``bbox`` [x, y, w, h] and/or ``segmentation``).
        iou_types: ``"bbox"`` and/or ``"segm"``; default: bbox, plus segm when results have masks.
        backend: ``"pycocotools"`` (reference) or ``"faster"`` (faster-coco-eval, same numbers).
        output_dir: when given, also write the report there (see :func:`write_report`).
        img_ids: evaluate only these images (default: all images in the ground truth).

    Returns:
        ``{iou_type: CocoEvalResult}`` in the order of ``iou_types``.

    Raises:
        EvaluationInputError: the inputs cannot be evaluated; the message names the file and the id/key.
    """
    check_backend(backend)
    coco_gt = None
    gt_source = ground_truth if isinstance(ground_truth, (str, os.PathLike)) else None
    if isinstance(ground_truth, dict):
        dataset = ground_truth
    elif gt_source is not None:
        dataset = read_json(gt_source, "ground-truth")
    else:  # a COCO object; reused as is when it belongs to the chosen backend
        dataset = ground_truth.dataset
        coco_gt = ground_truth if is_backend_coco(ground_truth, backend) else None
    results_source = results if isinstance(results, (str, os.PathLike)) else None
    detections = load_results(results)
    iou_types = list(iou_types) if iou_types else infer_iou_types(detections)
    validate_ground_truth(dataset, iou_types, source=gt_source)
    validate_results(detections, dataset, iou_types, source=results_source, gt_source=gt_source)
    if img_ids is not None:
        missing = sorted(set(img_ids) - {image["id"] for image in dataset["images"]}, key=str)
        if missing:
            raise EvaluationInputError(f"img_ids: image id {missing[0]!r} is not in the ground truth")
    if coco_gt is None:
        coco_gt = load_coco_gt(dataset, backend)

    selected = set(img_ids) if img_ids is not None else None
    num_detections = len(detections) if selected is None else sum(d["image_id"] in selected for d in detections)
    evaluated = {}
    for iou_type in iou_types:
        coco_eval = run_cocoeval(coco_gt, detections, iou_type, backend, img_ids=img_ids)
        evaluated[iou_type] = result_from_cocoeval(coco_eval, backend, num_detections=num_detections)
    if output_dir is not None:
        write_report(evaluated, output_dir)
    return evaluated


# ---------------------------------------------------------------------------------------------
# Text and files


def format_summary(result: CocoEvalResult) -> str:
    """pycocotools' standard 12 lines (0-1 scale, -1.000 where undefined), identical for both backends."""
    lines = []
    for (metric, iou, area, max_dets), name in zip(_SUMMARY_LINES, SUMMARY_NAMES):
        title = "Average Precision" if metric == "AP" else "Average Recall"
        value = result.summary[name]
        value = -1.0 if math.isnan(value) else value / 100.0
        lines.append(
            f" {title:<18} ({metric}) @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] = {value:0.3f}"
        )
    return "\n".join(lines)


def format_per_category_table(result: CocoEvalResult, limit: int | None = None) -> str:
    """Markdown table of per-category AP (0-100), worst first; ``limit`` keeps the worst rows only."""
    rows = result.per_category if limit is None else result.per_category[:limit]
    width = max([len("category")] + [len(row.name) for row in rows])
    header = f"| {'category':<{width}} |    id |    AP |  AP50 |  AP75 |   #GT | #dets |"
    rule = f"|{'-' * (width + 2)}|------:|------:|------:|------:|------:|------:|"
    body = [
        f"| {row.name:<{width}} | {row.category_id:>5} | {_fmt(row.ap)} | {_fmt(row.ap50)} | {_fmt(row.ap75)} "
        f"| {row.num_gt:>5} | {row.num_detections:>5} |"
        for row in rows
    ]
    hidden = len(result.per_category) - len(rows)
    tail = [f"({hidden} more categories in the CSV/JSON)"] if hidden > 0 else []
    return "\n".join([header, rule, *body, *tail])


def _fmt(value: float) -> str:
    return "  nan" if math.isnan(value) else f"{value:5.1f}"


def write_report(
    results: dict[str, CocoEvalResult],
    output_dir: str | os.PathLike,
    *,
    plots: bool = True,
    worst_n: int = 5,
) -> list[Path]:
    """Write ``coco_eval.json``, ``coco_eval_summary.csv``, ``per_category_<iou>.csv`` and the PNGs.

    Returns the written paths (for the tools to print).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    path = out / "coco_eval.json"
    path.write_text(json.dumps({iou_type: r.to_dict() for iou_type, r in results.items()}, indent=2) + "\n")
    written.append(path)

    path = out / "coco_eval_summary.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iou_type", "backend", *SUMMARY_NAMES])
        for iou_type, r in results.items():
            writer.writerow([iou_type, r.backend, *(_csv_float(r.summary[name]) for name in SUMMARY_NAMES)])
    written.append(path)

    for iou_type, r in results.items():
        path = out / f"per_category_{iou_type}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["category_id", "name", "AP", "AP50", "AP75", "num_gt", "num_detections"])
            for row in r.per_category:
                writer.writerow([row.category_id, row.name, *map(_csv_float, (row.ap, row.ap50, row.ap75)),
                                 row.num_gt, row.num_detections])
        written.append(path)

    if plots:
        from .plots import plot_per_category_ap, plot_pr_curves

        for iou_type, r in results.items():
            written.append(plot_pr_curves(r, out / f"pr_curves_{iou_type}.png", worst_n=worst_n))
            written.append(plot_per_category_ap(r, out / f"per_category_ap_{iou_type}.png"))
    return written


def _csv_float(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))
