"""Your own COCO-format dataset, trained and evaluated without writing code.

``DATASETS.TRAIN_JSON`` / ``DATASETS.TEST_JSON`` (``tools/train_net.py --train-json / --test-json``)
name COCO instances files. :func:`use_coco_json_datasets` registers each with detectron2 (so its
loader, mapper checks and COCO evaluator apply unchanged) under a name derived from the file,
points ``DATASETS.TRAIN`` / ``DATASETS.TEST`` at those names and sets ``NUM_CLASSES`` from the
categories. Category ids may be any integers (3, 17, 90): detectron2 maps them, sorted, to class
indices 0..K-1, and the evaluator maps predictions back to the dataset's ids.

Every function here is idempotent on a config it already applied to, so the launching process can
apply it (printing its notices) and each worker process can apply it again silently.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Sequence

from detectron2.config import CfgNode

# The head whose NUM_CLASSES a meta-architecture reads; all others use the ROI heads'.
NUM_CLASSES_HEAD = {"RetinaNet": "RETINANET"}
NOTICE_MAX_NAMES = 8


@dataclass(frozen=True)
class CocoJsonDataset:
    """A registered COCO-format dataset: its detectron2 name, files and categories."""

    name: str
    json_file: str
    image_root: str
    categories: tuple[tuple[int, str], ...]  # (dataset category id, name), sorted by id as detectron2 does

    @property
    def class_names(self) -> list[str]:
        return [name for _, name in self.categories]


def dataset_name_for(json_file: str | os.PathLike) -> str:
    """``<folder>_<stem>`` of the JSON file, e.g. ``my/train.json`` -> ``my_train`` (a valid, readable name)."""
    path = os.path.abspath(json_file)
    folder = os.path.basename(os.path.dirname(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"[^0-9A-Za-z]+", "_", f"{folder}_{stem}").strip("_") or "coco_json"


def read_categories(json_file: str, key: str) -> tuple[tuple[int, str], ...]:
    """The (id, name) categories of a COCO file, sorted by id; one clear error naming ``key`` and the file."""
    from swin_scratch.detection.data_checks import DatasetFormatError, DatasetNotFoundError
    from swin_scratch.evaluation.inputs import EvaluationInputError, read_json

    if not os.path.isfile(json_file):
        raise DatasetNotFoundError(f"{key}: annotation file {json_file} does not exist; check the path")
    try:
        data = read_json(json_file, "annotation")
    except EvaluationInputError as err:
        raise DatasetFormatError(f"{key}: {err}") from None
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


def _name_for_files(base: str, json_file: str, image_root: str) -> str:
    """``base``, or ``base_2``, ``base_3``... if a dataset of other files already has that name."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    candidate, number = base, 1
    while candidate in DatasetCatalog.list():
        metadata = MetadataCatalog.get(candidate)
        if getattr(metadata, "json_file", None) == json_file and getattr(metadata, "image_root", None) == image_root:
            return candidate
        number += 1
        candidate = f"{base}_{number}"
    return candidate


def register_coco_json(json_file: str, image_root: str = "", key: str = "DATASETS.TRAIN_JSON") -> CocoJsonDataset:
    """Register a COCO instances file with detectron2; ``image_root`` defaults to the JSON's folder.

    Class names and the id -> class-index map are set now (not when the data is first loaded), so
    NUM_CLASSES and the evaluator see them before any image is read. ``key`` names the config key
    in error messages.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    json_file = os.path.abspath(json_file)
    image_root = os.path.abspath(image_root or os.path.dirname(json_file))
    categories = read_categories(json_file, key)
    name = _name_for_files(dataset_name_for(json_file), json_file, image_root)
    if name in DatasetCatalog.list():  # same files: register afresh, the categories may have been edited
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, {}, json_file, image_root)
    MetadataCatalog.get(name).set(
        thing_classes=[class_name for _, class_name in categories],
        thing_dataset_id_to_contiguous_id={category_id: index for index, (category_id, _) in enumerate(categories)},
        config_key=key,
    )
    return CocoJsonDataset(name, json_file, image_root, categories)


def set_num_classes(cfg: CfgNode, class_names: Sequence[str], source: str) -> None:
    """Set NUM_CLASSES of the ROI heads and RetinaNet; one ``notice:`` line when it changes the value in use."""
    head = NUM_CLASSES_HEAD.get(cfg.MODEL.META_ARCHITECTURE, "ROI_HEADS")
    previous = cfg.MODEL[head].NUM_CLASSES
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(class_names)
    cfg.MODEL.RETINANET.NUM_CLASSES = len(class_names)
    if previous != len(class_names):
        shown = ", ".join(class_names[:NOTICE_MAX_NAMES]) + (", ..." if len(class_names) > NOTICE_MAX_NAMES else "")
        print(f"notice: MODEL.{head}.NUM_CLASSES {previous} -> {len(class_names)}, the classes of {source}: {shown}",
              file=sys.stderr)


def _register_split(cfg: CfgNode, split: str) -> CocoJsonDataset | None:
    from swin_scratch.detection.config import ConfigError

    json_file, image_root = cfg.DATASETS[f"{split}_JSON"], cfg.DATASETS[f"{split}_IMAGES"]
    if image_root and not json_file:
        raise ConfigError(f"DATASETS.{split}_IMAGES is set ({image_root}) but DATASETS.{split}_JSON is not; "
                          f"give the annotation file too (--{split.lower()}-json)")
    return register_coco_json(json_file, image_root, f"DATASETS.{split}_JSON") if json_file else None


def _check_same_categories(train: CocoJsonDataset, test: CocoJsonDataset) -> None:
    from swin_scratch.detection.data_checks import DatasetFormatError

    if train.categories != test.categories:
        raise DatasetFormatError(
            f"DATASETS.TEST_JSON {test.json_file} has categories {dict(test.categories)} but DATASETS.TRAIN_JSON "
            f"{train.json_file} has {dict(train.categories)}; a model is evaluated on the categories it was "
            "trained on: give both files the same 'categories' list"
        )


def use_coco_json_datasets(cfg: CfgNode) -> None:
    """Apply ``DATASETS.{TRAIN,TEST}_{JSON,IMAGES}`` to an unfrozen ``cfg`` (nothing to do when unset).

    Registers the files, sets ``DATASETS.TRAIN`` / ``DATASETS.TEST`` to their names and NUM_CLASSES
    to their categories. With a training JSON and no test JSON, training runs without evaluation
    (the config's own test set, e.g. COCO val, has other classes).
    """
    train, test = _register_split(cfg, "TRAIN"), _register_split(cfg, "TEST")
    if train and test:
        _check_same_categories(train, test)
    if train:
        cfg.DATASETS.TRAIN = (train.name,)
        if not test and len(cfg.DATASETS.TEST):
            print(f"notice: no DATASETS.TEST_JSON (--test-json): training on {train.json_file} without evaluation "
                  f"instead of evaluating on {', '.join(cfg.DATASETS.TEST)}", file=sys.stderr)
            cfg.DATASETS.TEST = ()
    if test:
        cfg.DATASETS.TEST = (test.name,)
    source = train or test
    if source:
        set_num_classes(cfg, source.class_names, source.json_file)
