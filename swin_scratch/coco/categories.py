"""The categories and mask encoding of a COCO instances file, and the dataset name derived from its path."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from swin_scratch.coco.errors import DatasetFormatError, DatasetNotFoundError
from swin_scratch.coco.inputs import EvaluationInputError, read_json

Categories = tuple[tuple[int, str], ...]  # (dataset category id, name), sorted by id as detectron2 does


def dataset_name_for(json_file: str | os.PathLike) -> str:
    """``<folder>_<stem>`` of the JSON file, e.g. ``my/train.json`` -> ``my_train`` (a valid, readable name)."""
    path = os.path.abspath(json_file)
    folder = os.path.basename(os.path.dirname(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"[^0-9A-Za-z]+", "_", f"{folder}_{stem}").strip("_") or "coco_json"


@dataclass(frozen=True)
class InstancesFile:
    """What a training run needs to know of a COCO instances file before reading any image."""

    categories: Categories
    rle_annotation_id: Any = None  # the id of the first annotation whose mask is RLE, if any


def read_instances_file(json_file: str, key: str) -> InstancesFile:
    """The categories and the mask encoding of a COCO file; one clear error naming ``key`` and the file."""
    if not os.path.isfile(json_file):
        raise DatasetNotFoundError(f"{key}: annotation file {json_file} does not exist; check the path")
    try:
        data = read_json(json_file, "annotation")
    except EvaluationInputError as err:
        raise DatasetFormatError(f"{key}: {err}") from None
    return InstancesFile(_categories(data, json_file, key), _first_rle_annotation_id(data))


def _first_rle_annotation_id(data: Any) -> Any:
    """COCO stores a mask as polygons (a list) or as RLE (a dict: ``{"size", "counts"}``, e.g. for masks
    with holes); detectron2 reads RLE only with ``INPUT.MASK_FORMAT bitmask``."""
    annotations = data.get("annotations") if isinstance(data, dict) else None
    for annotation in annotations if isinstance(annotations, list) else []:
        if isinstance(annotation, dict) and isinstance(annotation.get("segmentation"), dict):
            return annotation.get("id")
    return None


def _categories(data: Any, json_file: str, key: str) -> Categories:
    """The (id, name) categories of a COCO file's contents, sorted by id."""
    categories = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(categories, list) or not categories:
        raise DatasetFormatError(
            f"{key}: {json_file} has no 'categories' list; a COCO instances file names its classes there, "
            'e.g. "categories": [{"id": 1, "name": "cat"}]'
        )
    pairs = []
    for index, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("id"), int) or "name" not in category:
            raise DatasetFormatError(f"{key}: {json_file}: categories[{index}] needs an integer 'id' and a 'name'")
        pairs.append((category["id"], str(category["name"])))
    ids = [category_id for category_id, _ in pairs]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        raise DatasetFormatError(f"{key}: {json_file}: category id {duplicated[0]} appears more than once")
    return tuple(sorted(pairs))
