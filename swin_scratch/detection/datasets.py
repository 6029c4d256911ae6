"""The datasets a config can name, registered with detectron2: the built-in shapes splits and your
own COCO-format files.

``DATASETS.TRAIN_JSON`` / ``DATASETS.TEST_JSON`` (``tools/train_net.py --train-json / --test-json``)
name COCO instances files. :func:`use_coco_json_datasets` registers each with detectron2 (so its
loader, mapper checks and COCO evaluator apply unchanged) under a name derived from the file,
points ``DATASETS.TRAIN`` / ``DATASETS.TEST`` at those names and sets ``NUM_CLASSES`` from the
categories. Category ids may be any integers (3, 17, 90): detectron2 maps them, sorted, to class
indices 0..K-1, and the evaluator maps predictions back to the dataset's ids.

Registration is per process and idempotent: the launching process applies it (printing its
notices) and each worker process applies it again silently.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

from swin_scratch.coco.categories import Categories, dataset_name_for, read_instances_file
from swin_scratch.coco.errors import DatasetFormatError
from swin_scratch.data.paths import default_shapes_root
from swin_scratch.data.shapes import CLASS_COLORS, CLASS_NAMES, SPLITS, annotation_path, image_dir
from swin_scratch.detection.config import ConfigError

# The head whose NUM_CLASSES a meta-architecture reads; all others use the ROI heads'.
NUM_CLASSES_HEAD = {"RetinaNet": "RETINANET"}
NOTICE_MAX_NAMES = 8


def _registered_with_files(name: str, json_file: str, image_root: str) -> bool:
    metadata = MetadataCatalog.get(name)
    return getattr(metadata, "json_file", None) == json_file and getattr(metadata, "image_root", None) == image_root


def register_coco_dataset(name: str, json_file: str, image_root: str, refresh: bool = False, **metadata: Any) -> None:
    """Register a COCO instances file under ``name`` with ``metadata``: the one registration path.

    A name already registered for the same files is kept (``refresh=True`` registers it afresh); a name
    registered for other files is re-pointed (tests use temporary roots), so callers never check first.
    """
    if name in DatasetCatalog.list():
        if _registered_with_files(name, json_file, image_root) and not refresh:
            return
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, {}, json_file, image_root)
    MetadataCatalog.get(name).set(**metadata)


SHAPES_DATASETS: dict[str, str] = {f"shapes_{split}": split for split in SPLITS}  # name -> split


def register_shapes_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """Register ``shapes_train`` / ``shapes_val`` (COCO format) under ``root`` (default: :func:`default_shapes_root`).

    Registering again is a no-op for the same root and re-points the names for another root
    (tests use temporary roots), so callers never need to check first. The files need not exist
    yet; class names and colors are set now, so a Visualizer can label predictions without loading
    the annotations. Returns the registered names.
    """
    root = Path(root) if root is not None else default_shapes_root()
    for name, split in SHAPES_DATASETS.items():
        register_coco_dataset(
            name, str(annotation_path(root, split)), str(image_dir(root, split)),
            thing_classes=list(CLASS_NAMES),
            thing_colors=[list(color) for color in CLASS_COLORS],
            thing_dataset_id_to_contiguous_id={index + 1: index for index in range(len(CLASS_NAMES))},
        )
    return list(SHAPES_DATASETS)


@dataclass(frozen=True)
class CocoJsonDataset:
    """A registered COCO-format dataset: its detectron2 name, files and categories."""

    name: str
    json_file: str
    image_root: str
    categories: Categories
    rle_annotation_id: Any = None  # an annotation whose mask is RLE (None: polygons only)

    @property
    def class_names(self) -> list[str]:
        return [name for _, name in self.categories]


def _name_for_files(base: str, json_file: str, image_root: str) -> str:
    """``base``, or ``base_2``, ``base_3``... if a dataset of other files already has that name."""
    candidate, number = base, 1
    while candidate in DatasetCatalog.list() and not _registered_with_files(candidate, json_file, image_root):
        number += 1
        candidate = f"{base}_{number}"
    return candidate


def register_coco_json(json_file: str, image_root: str = "", key: str = "DATASETS.TRAIN_JSON") -> CocoJsonDataset:
    """Register a COCO instances file with detectron2; ``image_root`` defaults to the JSON's folder.

    Class names and the id -> class-index map are set now (not when the data is first loaded), so
    NUM_CLASSES and the evaluator see them before any image is read. ``key`` names the config key
    in error messages.
    """
    json_file = os.path.abspath(json_file)
    image_root = os.path.abspath(image_root or os.path.dirname(json_file))
    contents = read_instances_file(json_file, key)
    categories = contents.categories
    name = _name_for_files(dataset_name_for(json_file), json_file, image_root)
    # same files: registered afresh all the same, the categories may have been edited
    register_coco_dataset(
        name, json_file, image_root, refresh=True,
        thing_classes=[class_name for _, class_name in categories],
        thing_dataset_id_to_contiguous_id={category_id: index for index, (category_id, _) in enumerate(categories)},
        config_key=key,
    )
    return CocoJsonDataset(name, json_file, image_root, categories, contents.rle_annotation_id)


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


def use_bitmasks_for_rle(cfg: CfgNode, dataset: CocoJsonDataset) -> None:
    """RLE masks load only as bitmasks: switch ``INPUT.MASK_FORMAT`` with one ``notice:`` line rather
    than let every image with such a mask fail in the loader (detectron2's polygon default)."""
    if dataset.rle_annotation_id is None or not cfg.MODEL.MASK_ON or cfg.INPUT.MASK_FORMAT != "polygon":
        return
    cfg.INPUT.MASK_FORMAT = "bitmask"
    print(f"notice: INPUT.MASK_FORMAT polygon -> bitmask: {dataset.json_file} has RLE masks (annotation id "
          f"{dataset.rle_annotation_id}), which polygons cannot carry", file=sys.stderr)


def _register_split(cfg: CfgNode, split: str) -> CocoJsonDataset | None:
    json_file, image_root = cfg.DATASETS[f"{split}_JSON"], cfg.DATASETS[f"{split}_IMAGES"]
    if image_root and not json_file:
        raise ConfigError(f"DATASETS.{split}_IMAGES is set ({image_root}) but DATASETS.{split}_JSON is not; "
                          f"give the annotation file too (--{split.lower()}-json)")
    return register_coco_json(json_file, image_root, f"DATASETS.{split}_JSON") if json_file else None


def _check_same_categories(train: CocoJsonDataset, test: CocoJsonDataset) -> None:
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
        use_bitmasks_for_rle(cfg, train)
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


def register_config_datasets(cfg: CfgNode) -> None:
    """Register the datasets ``cfg`` can name (built-in shapes, its own COCO JSONs); needed in every process."""
    register_shapes_datasets(cfg.DATASETS.SHAPES_ROOT or None)
    use_coco_json_datasets(cfg)
