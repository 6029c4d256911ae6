"""Training data checks: one clear message for a dataset that cannot work, warnings for bad annotations.

Fatal (before training starts): dataset not registered, annotation JSON missing / malformed / not
COCO, an annotation pointing at an image file that does not exist. Recoverable (training goes on,
with a warning that counts them): polygons with fewer than 3 points, zero-area boxes, boxes
outside the image, unreadable image files.
"""
from __future__ import annotations

import copy
import logging
import os
from collections import Counter
from typing import Any, Optional

from detectron2.data import DatasetMapper, MetadataCatalog
from detectron2.data.catalog import DatasetCatalog
from detectron2.structures import BoxMode

from swin_scratch.coco.errors import DatasetFormatError, DatasetNotFoundError
from swin_scratch.coco.inputs import EvaluationInputError, load_ground_truth
from swin_scratch.data.paths import datasets_root

logger = logging.getLogger("swin_scratch")

# Parsing is cheap below this size; COCO train2017 (448 MB) is trusted to be well-formed.
MAX_VALIDATED_JSON_BYTES = 100 * 1024 * 1024
DEMO_CONFIG = "swin_shapes.yaml"


def _config_key(name: str) -> str | None:
    """The config key a dataset came from (``DATASETS.TRAIN_JSON``...; see :mod:`.datasets`), if any."""
    return getattr(MetadataCatalog.get(name), "config_key", None)


def _missing_data_hint(name: str) -> str:
    config_key = _config_key(name)
    if config_key:  # DATASETS.TRAIN_JSON -> also DATASETS.TRAIN_IMAGES, --train-json, --train-images
        split = config_key.split(".")[1].split("_")[0]
        return (f"check DATASETS.{split}_JSON and DATASETS.{split}_IMAGES "
                f"(--{split.lower()}-json, --{split.lower()}-images; images default to the JSON's folder)")
    if name.startswith("shapes"):
        return "generate it with `python tools/make_shapes_dataset.py` (make demo does this)"
    return (
        f"set DETECTRON2_DATASETS to the folder that holds coco/ (now: {str(datasets_root())!r}), "
        f"or train on the built-in demo data instead: python tools/train_net.py --config {DEMO_CONFIG}"
    )


def check_datasets_available(dataset_names: list[str]) -> None:
    """Fail early, with one message, when a dataset's files are missing or malformed."""
    for name in dataset_names:
        if name not in DatasetCatalog.list():
            known = [n for n in DatasetCatalog.list() if n.startswith(("coco_2017", "shapes"))]
            raise DatasetNotFoundError(
                f"dataset {name!r} is not registered; registered ones include {', '.join(known)}"
            )
        metadata = MetadataCatalog.get(name)
        json_file = getattr(metadata, "json_file", None)
        image_root = getattr(metadata, "image_root", None)
        missing = [p for p in (json_file, image_root) if p and not os.path.exists(p)]
        if missing:
            raise DatasetNotFoundError(
                f"dataset {name!r} not found: looked for {' and '.join(missing)}; {_missing_data_hint(name)}"
            )
        if json_file and os.path.getsize(json_file) <= MAX_VALIDATED_JSON_BYTES:
            _validate_coco_file(name, json_file, image_root)


def _validate_coco_file(name: str, json_file: str, image_root: Optional[str]) -> None:
    try:
        dataset = load_ground_truth(json_file)
    except EvaluationInputError as err:
        raise DatasetFormatError(f"dataset {name!r}: {err}") from None
    if image_root:
        for image in dataset["images"]:
            path = os.path.join(image_root, image.get("file_name", ""))
            if not os.path.isfile(path):
                hint = f"; {_missing_data_hint(name)}" if _config_key(name) else ""
                raise DatasetNotFoundError(
                    f"dataset {name!r}: image id {image['id']} points at {path}, which does not exist "
                    f"(annotations {json_file}, image root {image_root}){hint}"
                )


def clean_annotations(record: dict[str, Any]) -> tuple[dict[str, Any], Counter]:
    """Drop annotations that cannot train anything; returns the cleaned record and what was dropped."""
    height, width = record["height"], record["width"]
    dropped: Counter = Counter()
    kept = []
    for ann in record.get("annotations", []):
        x0, y0, x1, y1 = BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            dropped["zero-area box"] += 1
            continue
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            dropped["box outside the image"] += 1
            continue
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, list):
            polygons = [p for p in segmentation if len(p) >= 6]
            if len(polygons) < len(segmentation):
                dropped["polygon with fewer than 3 points"] += len(segmentation) - len(polygons)
            if not polygons:
                continue
            ann = {**ann, "segmentation": polygons}
        kept.append(ann)
    return {**record, "annotations": kept}, dropped


class SafeDatasetMapper(DatasetMapper):
    """detectron2's mapper that skips what it cannot use instead of stopping a days-long run.

    Bad annotations are dropped and counted; an unreadable image returns None, which makes
    detectron2's ``MapDataset`` draw another image. Both are logged as warnings with counts.
    Grayscale and RGBA images are converted by detectron2's ``read_image``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dropped: Counter = Counter()

    def __call__(self, dataset_dict: dict[str, Any]) -> Optional[dict[str, Any]]:
        record, dropped = clean_annotations(copy.deepcopy(dataset_dict)) if self.is_train else (dataset_dict, Counter())
        if dropped:
            self.dropped.update(dropped)
            logger.warning(
                "dropped invalid annotations in %s: %s (total so far: %s); training goes on",
                record.get("file_name"), dict(dropped), dict(self.dropped),
            )
        try:
            return super().__call__(record)
        except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for unreadable files
            self.dropped["unreadable image"] += 1
            logger.warning("skipping unreadable image %s: %s (%d so far)", record.get("file_name"), err,
                           self.dropped["unreadable image"])
            return None
