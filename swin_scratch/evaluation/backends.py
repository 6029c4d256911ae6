"""Two COCO evaluation engines behind one call: pycocotools (the reference) and faster-coco-eval.

Both return an object with pycocotools' ``COCOeval`` surface (``stats``, ``eval["precision"]``,
``params``, ``cocoGt``, ``cocoDt``), so everything downstream (summary, per-category table,
plots) is written once. faster-coco-eval is an optional extra (``pip install faster-coco-eval``).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Sequence

from swin_scratch.coco.inputs import EvaluationInputError

BACKENDS = ("pycocotools", "faster")


def check_backend(name: str) -> None:
    """Raise a clear error for an unknown backend or a missing optional package."""
    if name not in BACKENDS:
        raise EvaluationInputError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name == "faster":
        try:
            import faster_coco_eval  # noqa: F401
        except ImportError:
            raise EvaluationInputError(
                "backend 'faster' needs the optional package faster-coco-eval: "
                "pip install faster-coco-eval (or pip install -e '.[faster-eval]'), or use --backend pycocotools"
            ) from None


def load_coco_gt(dataset: dict, backend: str) -> Any:
    """Index a copy of a ground-truth dict with the backend's own ``COCO`` class (quietly).

    A copy, because both libraries mark the annotations they evaluate (``ignore``, cached RLEs).
    They only add top-level keys, so copying each annotation dict is enough (a deep copy of
    COCO val's polygons would cost more than the evaluation's matching).
    """
    check_backend(backend)
    dataset = {**dataset, "annotations": [dict(ann) for ann in dataset["annotations"]]}
    if backend == "faster":
        from faster_coco_eval import COCO as FasterCOCO

        return FasterCOCO(dataset, print_function=_silent)
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def is_backend_coco(coco: Any, backend: str) -> bool:
    """Whether ``coco`` is already an index of the backend's own ``COCO`` class (reusable as is)."""
    if backend == "faster":
        from faster_coco_eval import COCO as FasterCOCO

        return isinstance(coco, FasterCOCO)
    from pycocotools.coco import COCO

    return isinstance(coco, COCO)


def run_cocoeval(
    coco_gt: Any,
    results: Sequence[dict],
    iou_type: str,
    backend: str,
    img_ids: Sequence[int] | None = None,
) -> Any:
    """evaluate → accumulate → summarize one IoU type; returns the backend's ``COCOeval``.

    Each detection dict is copied: both libraries' ``loadRes`` write ``area``/``id``/``segmentation``
    into it, which would leak a box polygon from a bbox run into a segm run. They set top-level
    keys only, so a shallow copy per detection suffices.
    """
    results = [dict(det) for det in results]
    if iou_type == "segm":
        # As detectron2 does: without "bbox", the mask area (not the box area) decides small/medium/large.
        for det in results:
            det.pop("bbox", None)
    if backend == "faster":
        from faster_coco_eval import COCOeval_faster

        coco_dt = coco_gt.loadRes(results)
        coco_eval = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=_silent)
    else:
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(results)
        coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
    if img_ids is not None:
        coco_eval.params.imgIds = list(img_ids)
    with contextlib.redirect_stdout(io.StringIO()):  # both print progress and the 12 lines
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def _silent(*args: Any, **kwargs: Any) -> None:
    """faster-coco-eval's ``print_function`` hook: we print our own summary."""
