"""A small "own data" COCO dataset, shaped like real users' files rather than like the shapes demo.

Three categories with non-contiguous ids listed out of order (kiwi 17, apple 3, plum 90), image ids
that are not 1..N, file_names in sub-folders, images without annotations and one degenerate polygon.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

CATEGORIES = [{"id": 17, "name": "kiwi"}, {"id": 3, "name": "apple"}, {"id": 90, "name": "plum"}]
CLASS_NAMES = ["apple", "kiwi", "plum"]  # detectron2's class order: sorted by category id
CATEGORY_IDS = {3, 17, 90}
COLORS = {3: (220, 40, 40), 17: (60, 200, 60), 90: (120, 40, 160)}
IMAGE_SIZE = (96, 80)  # width, height
TRAIN_IMAGE_IDS = (1001, 57, 9, 4242, 8, 77)
VAL_IMAGE_IDS = (31, 2000, 5)


def _draw_image(path: Path, category_ids: list[int], annotations: list[dict], image_id: int) -> None:
    image = Image.new("RGB", IMAGE_SIZE, (200, 200, 190))
    draw = ImageDraw.Draw(image)
    for slot, category_id in enumerate(category_ids):
        x, y, w, h = 8 + 28 * slot, 10 + 10 * slot, 21, 25
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=COLORS[category_id])
        annotations.append({
            "id": 500 + 7 * len(annotations), "image_id": image_id, "category_id": category_id,
            "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_split(root: Path, split: str, image_ids: tuple[int, ...]) -> Path:
    """``root/<split>.json`` with images under ``root/images/<sub-folder>/``; every third image is empty."""
    images, annotations = [], []
    for index, image_id in enumerate(image_ids):
        file_name = f"images/part{index % 2}/{split}_{image_id}.png"
        objects = [] if index % 3 == 2 else [3, 17, 90][index % 3:]
        _draw_image(root / file_name, objects, annotations, image_id)
        images.append({"id": image_id, "file_name": file_name, "width": IMAGE_SIZE[0], "height": IMAGE_SIZE[1]})
    if split == "train":  # a 2-point polygon next to a good one: dropped with a warning, training goes on
        annotations[0]["segmentation"].append([1, 1, 5, 1])
    path = root / f"{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return path


def write_own_dataset(root: Path) -> tuple[Path, Path]:
    """(train.json, val.json) under ``root``."""
    return write_split(root, "train", TRAIN_IMAGE_IDS), write_split(root, "val", VAL_IMAGE_IDS)

