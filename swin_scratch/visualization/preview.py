"""A picture of the shapes dataset: a grid of images with their ground-truth masks, boxes and classes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from swin_scratch.data.shapes import CLASS_COLORS, CLASS_NAMES, annotation_path, image_dir


def draw_shapes_preview(
    root: str | os.PathLike,
    output_path: str | os.PathLike,
    split: str = "train",
    num_images: int = 4,
    columns: int = 2,
    scale: float = 2.0,
    min_objects: int = 2,
) -> Path:
    """Write ``num_images`` images of ``split`` with annotations drawn, as one PNG grid.

    The first images with at least ``min_objects`` objects are shown (overlap and occlusion are
    what is worth seeing), topped up with the next images if there are too few. The PNG is
    palette-quantized (256 colors): the docs picture stays small (~100 KB for 2x2).
    Colors are fixed per class, so the same dataset gives the same picture.
    """
    import cv2
    from detectron2.data.catalog import Metadata
    from detectron2.structures import BoxMode
    from detectron2.utils.visualizer import ColorMode, Visualizer
    from PIL import Image

    coco = json.loads(annotation_path(root, split).read_text())
    by_image: dict[int, list[dict]] = {}
    for annotation in coco["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    busy = [image for image in coco["images"] if len(by_image.get(image["id"], [])) >= min_objects]
    chosen = (busy + [image for image in coco["images"] if image not in busy])[:num_images]
    metadata = Metadata(name="shapes_preview").set(thing_classes=list(CLASS_NAMES), thing_colors=list(CLASS_COLORS))

    tiles = []
    random_state = np.random.get_state()
    np.random.seed(0)  # the Visualizer jitters colors with the global numpy RNG
    try:
        for image_info in chosen:
            image = cv2.imread(str(image_dir(root, split) / image_info["file_name"]))[:, :, ::-1]  # RGB
            record = {"annotations": [
                {"bbox": a["bbox"], "bbox_mode": BoxMode.XYWH_ABS, "segmentation": a["segmentation"],
                 "category_id": a["category_id"] - 1, "iscrowd": a["iscrowd"]}
                for a in by_image.get(image_info["id"], [])
            ]}
            visualizer = Visualizer(image, metadata, scale=scale, instance_mode=ColorMode.SEGMENTATION)
            tiles.append(visualizer.draw_dataset_dict(record).get_image())
    finally:
        np.random.set_state(random_state)
    if not tiles:
        raise ValueError(f"split {split!r} under {root} has no images to preview")

    gap = 4
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        grid[top:top + height, left:left + width] = tile
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(output_path, optimize=True)
    return output_path
