"""How the built-in shapes splits are registered with detectron2."""
from __future__ import annotations

import os
from pathlib import Path

from .paths import default_shapes_root
from .shapes import CLASS_COLORS, CLASS_NAMES, SPLITS, annotation_path, image_dir

SHAPES_DATASETS: dict[str, str] = {f"shapes_{split}": split for split in SPLITS}  # name -> split


def register_shapes_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """Register ``shapes_train`` / ``shapes_val`` (COCO format) under ``root`` (default: :func:`default_shapes_root`).

    Registering again is a no-op for the same root and re-points the names for another root
    (tests use temporary roots), so callers never need to check first. The files need not exist
    yet; class names and colors are set now, so a Visualizer can label predictions without loading
    the annotations. Returns the registered names.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    root = Path(root) if root is not None else default_shapes_root()
    for name, split in SHAPES_DATASETS.items():
        json_file, images = str(annotation_path(root, split)), str(image_dir(root, split))
        if name in DatasetCatalog.list():
            metadata = MetadataCatalog.get(name)
            if getattr(metadata, "json_file", None) == json_file and getattr(metadata, "image_root", None) == images:
                continue
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_coco_instances(name, {}, json_file, images)
        MetadataCatalog.get(name).set(
            thing_classes=list(CLASS_NAMES),
            thing_colors=[list(color) for color in CLASS_COLORS],
            thing_dataset_id_to_contiguous_id={index + 1: index for index in range(len(CLASS_NAMES))},
        )
    return list(SHAPES_DATASETS)
