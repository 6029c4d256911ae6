"""Load and check COCO ground truth and results before any COCO API sees them.

pycocotools answers most input mistakes with an ``AssertionError`` or ``KeyError`` deep inside
``loadRes``/``evaluate`` and no hint of which file, detection or id is wrong. Every check here
raises :class:`EvaluationInputError` whose message names the file, the offending id or key, and
what to do, so tools can print it as one line.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

IOU_TYPES = ("bbox", "segm")
GT_REQUIRED_KEYS = ("images", "annotations", "categories")
RESULT_REQUIRED_KEYS = ("image_id", "category_id", "score")


class EvaluationInputError(ValueError):
    """A user-fixable problem with the ground truth or results; the message says which and how to fix it."""


def _describe(source: str | os.PathLike | None, what: str) -> str:
    return f"{what} file {str(source)!r}" if source is not None else what


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse a JSON file, turning "missing" and "malformed" into one clear error."""
    path = Path(path)
    if not path.exists():
        raise EvaluationInputError(f"{what} file {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise EvaluationInputError(f"{what} path {str(path)!r} is a directory; give the JSON file inside it")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise EvaluationInputError(
            f"{what} file {str(path)!r} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            "was it truncated while being written?"
        ) from None
    except UnicodeDecodeError:
        raise EvaluationInputError(f"{what} file {str(path)!r} is not a UTF-8 text (JSON) file") from None


def load_ground_truth(
    ground_truth: str | os.PathLike | dict,
    iou_types: Sequence[str] = ("bbox",),
) -> dict:
    """Return the COCO ground-truth dataset dict after checking it can be evaluated for ``iou_types``.

    Args:
        ground_truth: path to an ``instances_*.json`` file, or the already-loaded dict.
        iou_types: the evaluations that will run; ``"segm"`` needs a segmentation on every annotation.
    """
    source = None if isinstance(ground_truth, dict) else ground_truth
    dataset = ground_truth if isinstance(ground_truth, dict) else read_json(ground_truth, "ground-truth")
    validate_ground_truth(dataset, iou_types, source=source)
    return dataset


def validate_ground_truth(
    dataset: Any, iou_types: Sequence[str] = ("bbox",), source: str | os.PathLike | None = None
) -> None:
    """Check the keys and ids pycocotools relies on without checking them itself."""
    name = _describe(source, "ground truth")
    if not isinstance(dataset, dict):
        hint = " (a list looks like a results file; pass it as the results)" if isinstance(dataset, list) else ""
        raise EvaluationInputError(
            f"{name} is not a COCO dataset: expected a JSON object, got {type(dataset).__name__}{hint}"
        )
    missing = [key for key in GT_REQUIRED_KEYS if key not in dataset]
    if missing == ["annotations"]:
        raise EvaluationInputError(
            f"{name} has no 'annotations' (a test-set file without labels?); it cannot be used to evaluate"
        )
    if missing:
        raise EvaluationInputError(
            f"{name} is not a COCO instances file: missing key(s) {', '.join(repr(k) for k in missing)} "
            f"(a COCO file has {', '.join(repr(k) for k in GT_REQUIRED_KEYS)})"
        )
    _check_unique_ids(dataset["images"], "images", name)
    _check_unique_ids(dataset["categories"], "categories", name)
    _check_unique_ids(dataset["annotations"], "annotations", name)
    if not dataset["categories"]:
        raise EvaluationInputError(f"{name} has an empty 'categories' list; nothing can be evaluated")
    for category in dataset["categories"]:
        if "name" not in category:
            raise EvaluationInputError(f"{name}: category id {category['id']} has no 'name'")
    image_ids = {image["id"] for image in dataset["images"]}
    category_ids = {category["id"] for category in dataset["categories"]}
    needed = ["image_id", "category_id", "area", "bbox"] + (["segmentation"] if "segm" in iou_types else [])
    for ann in dataset["annotations"]:
        for key in needed:
            if key not in ann:
                hint = " (needed for --iou-type segm; evaluate bbox only)" if key == "segmentation" else ""
                raise EvaluationInputError(f"{name}: annotation id {ann['id']} has no {key!r}{hint}")
        if ann["image_id"] not in image_ids:
            raise EvaluationInputError(
                f"{name}: annotation id {ann['id']} refers to image_id {ann['image_id']!r}, which is not in 'images'"
            )
        if ann["category_id"] not in category_ids:
            raise EvaluationInputError(
                f"{name}: annotation id {ann['id']} has category_id {ann['category_id']!r}, "
                "which is not in 'categories'"
            )


def _check_unique_ids(entries: Any, key: str, name: str) -> None:
    if not isinstance(entries, list):
        raise EvaluationInputError(f"{name}: {key!r} must be a list, got {type(entries).__name__}")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry:
            raise EvaluationInputError(f"{name}: {key}[{index}] has no 'id'")
    counts = Counter(entry["id"] for entry in entries)
    duplicates = sorted((i for i, n in counts.items() if n > 1), key=str)
    if duplicates:
        raise EvaluationInputError(
            f"{name}: {key} id {duplicates[0]!r} appears {counts[duplicates[0]]} times "
            f"({len(duplicates)} duplicated id(s)); ids must be unique"
        )


def load_results(results: str | os.PathLike | Sequence[dict]) -> list[dict]:
    """Return COCO-format detections from a ``*.json`` path or an in-memory list (not yet validated)."""
    if isinstance(results, (str, os.PathLike)):
        data = read_json(results, "results")
        if isinstance(data, dict):
            keys = ", ".join(repr(k) for k in list(data)[:5])
            hint = "; this looks like a ground-truth file, pass it with --gt" if "images" in data else ""
            raise EvaluationInputError(
                f"results file {str(results)!r} holds a JSON object (keys {keys}); expected a JSON list of "
                f"detections like detectron2's coco_instances_results.json{hint}"
            )
        if not isinstance(data, list):
            raise EvaluationInputError(f"results file {str(results)!r} must hold a JSON list of detections")
        return data
    return list(results)


def infer_iou_types(results: Iterable[dict]) -> list[str]:
    """``bbox`` always, ``segm`` too when the detections carry masks (detectron2's rule)."""
    return ["bbox", "segm"] if any("segmentation" in r for r in results) else ["bbox"]


def validate_results(
    results: Sequence[dict],
    dataset: dict,
    iou_types: Sequence[str],
    source: str | os.PathLike | None = None,
    gt_source: str | os.PathLike | None = None,
) -> None:
    """Check detections against the ground truth: keys present, image and category ids known."""
    name = _describe(source, "results")
    gt_name = _describe(gt_source, "the ground truth")
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise EvaluationInputError(f"unknown IoU type {iou_type!r}; choose from {', '.join(IOU_TYPES)}")
    if len(results) == 0:
        raise EvaluationInputError(
            f"{name} is an empty list: there are no detections to evaluate "
            "(did the model predict nothing above its score threshold, or did inference run on no images?)"
        )
    needed = RESULT_REQUIRED_KEYS + tuple(
        {"bbox": "bbox", "segm": "segmentation"}[iou_type] for iou_type in iou_types
    )
    for index, det in enumerate(results):
        if not isinstance(det, dict):
            raise EvaluationInputError(f"{name}: detection {index} is a {type(det).__name__}, expected an object")
        for key in needed:
            if key not in det:
                hint = (
                    "; these results have no masks, evaluate with --iou-type bbox"
                    if key == "segmentation"
                    else ""
                )
                raise EvaluationInputError(f"{name}: detection {index} has no {key!r}{hint}")
        if "bbox" in det and (not isinstance(det["bbox"], (list, tuple)) or len(det["bbox"]) != 4):
            raise EvaluationInputError(
                f"{name}: detection {index} has bbox {det['bbox']!r}; expected [x, y, width, height]"
            )

    image_ids = {image["id"] for image in dataset["images"]}
    unknown_images = Counter(det["image_id"] for det in results if det["image_id"] not in image_ids)
    if unknown_images:
        bad = next(iter(unknown_images))
        first = next(i for i, det in enumerate(results) if det["image_id"] == bad)
        raise EvaluationInputError(
            f"{name}: image_id {bad!r} (detection {first}, {unknown_images[bad]} detection(s)) is not in "
            f"{gt_name} ({len(unknown_images)} unknown image id(s) in all); were the results made on another "
            "split or with different image ids?"
        )
    category_ids = sorted(category["id"] for category in dataset["categories"])
    known = set(category_ids)
    unknown_categories = Counter(det["category_id"] for det in results if det["category_id"] not in known)
    if unknown_categories:
        bad = next(iter(unknown_categories))
        first = next(i for i, det in enumerate(results) if det["category_id"] == bad)
        shown = ", ".join(map(str, category_ids[:10])) + (", ..." if len(category_ids) > 10 else "")
        raise EvaluationInputError(
            f"{name}: category_id {bad!r} (detection {first}) is not a category of {gt_name} (ids: {shown}); "
            "if the results use the model's contiguous 0-based class indices, map them back to the dataset's ids"
        )


RESULTS_FILE_NAME = "coco_instances_results.json"  # what detectron2's COCOEvaluator saves


def find_results_file(path: str | os.PathLike, dataset_name: str | None = None) -> tuple[Path, str | None]:
    """Locate detectron2's saved results for ``path`` (a results file or a detectron2 output directory).

    detectron2 writes ``<OUTPUT_DIR>/inference/coco_instances_results.json``; this project's trainer
    writes ``<OUTPUT_DIR>/inference/<dataset>/coco_instances_results.json``.

    Returns:
        (results file, dataset name guessed from an ``inference/<dataset>/`` folder, or None).
    """
    path = Path(path)
    if path.is_file():
        return path, _dataset_from_folder(path.parent)
    if not path.exists():
        raise EvaluationInputError(
            f"results path {str(path)!r} does not exist; give a results JSON or an output directory"
        )
    if dataset_name and (path / "inference" / dataset_name / RESULTS_FILE_NAME).is_file():
        return path / "inference" / dataset_name / RESULTS_FILE_NAME, dataset_name
    for candidate in (path / RESULTS_FILE_NAME, path / "inference" / RESULTS_FILE_NAME):
        if candidate.is_file():
            return candidate, _dataset_from_folder(candidate.parent)
    per_dataset = sorted((path / "inference").glob(f"*/{RESULTS_FILE_NAME}"))
    if len(per_dataset) == 1:
        return per_dataset[0], per_dataset[0].parent.name
    if len(per_dataset) > 1:
        names = ", ".join(p.parent.name for p in per_dataset)
        raise EvaluationInputError(
            f"{str(path)!r} holds results for several datasets ({names}); choose one with --dataset NAME"
        )
    raise EvaluationInputError(
        f"no {RESULTS_FILE_NAME} in {str(path)!r} (looked in it, in inference/ and in inference/*/); "
        "evaluate a model first (tools/train_net.py --eval-only) or pass the results file itself"
    )


def _dataset_from_folder(folder: Path) -> str | None:
    return folder.name if folder.parent.name == "inference" else None
