"""Synthetic COCO ground truth and jittered detections: benchmark and test data of any size.

Used by ``tools/benchmark_coco_eval.py`` and by the tests (small sizes) that compare backends.
"""
from __future__ import annotations

import math

import numpy as np


def _octagon(x: float, y: float, w: float, h: float) -> list[float]:
    """A box-inscribed octagon: a mask that is not just its box, so segm differs from bbox."""
    cx, cy = x + w / 2, y + h / 2
    angles = np.arange(8) * (2 * math.pi / 8) + math.pi / 8
    points = np.stack([cx + np.cos(angles) * w / 2 / math.cos(math.pi / 8) * 0.99,
                       cy + np.sin(angles) * h / 2 / math.cos(math.pi / 8) * 0.99], axis=1)
    points[:, 0] = points[:, 0].clip(x, x + w)
    points[:, 1] = points[:, 1].clip(y, y + h)
    return [round(float(v), 2) for v in points.reshape(-1)]


def make_synthetic_coco(
    num_images: int = 500,
    num_categories: int = 20,
    boxes_per_image: tuple[int, int] = (2, 12),
    image_size: tuple[int, int] = (480, 640),
    seed: int = 0,
) -> dict:
    """A COCO instances dict with random boxes of all three COCO sizes and octagon polygon masks."""
    rng = np.random.default_rng(seed)
    height, width = image_size
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "height": height, "width": width})
        for _ in range(int(rng.integers(boxes_per_image[0], boxes_per_image[1] + 1))):
            side = float(np.exp(rng.uniform(np.log(8), np.log(300))))  # small, medium and large objects
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            w, h = min(w, width - 1.0), min(h, height - 1.0)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            bbox = [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(rng.integers(1, num_categories + 1)),
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": int(rng.random() < 0.01),
                "segmentation": [_octagon(*bbox)],
            })
    categories = [{"id": c, "name": f"class_{c:02d}", "supercategory": "synthetic"}
                  for c in range(1, num_categories + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}


def jittered_detections(
    dataset: dict,
    seed: int = 0,
    jitter: float = 0.08,
    miss_rate: float = 0.1,
    duplicate_rate: float = 0.2,
    false_positives_per_image: float = 1.0,
    with_masks: bool = True,
) -> list[dict]:
    """Detections as a plausible model would make them: jittered boxes, misses, duplicates, confusions, FPs."""
    import pycocotools.mask as mask_util

    rng = np.random.default_rng(seed)
    images = {image["id"]: image for image in dataset["images"]}
    num_categories = len(dataset["categories"])
    category_ids = [c["id"] for c in dataset["categories"]]
    # Later categories are harder (up to 2x the jitter and misses), so per-category AP varies.
    difficulty = {cid: 0.5 + 1.5 * k / max(num_categories - 1, 1) for k, cid in enumerate(category_ids)}
    detections = []

    def add(image_id: int, category_id: int, x: float, y: float, w: float, h: float, score: float) -> None:
        image = images[image_id]
        x, y = max(0.0, x), max(0.0, y)
        w, h = max(1.0, min(w, image["width"] - x)), max(1.0, min(h, image["height"] - y))
        det = {"image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h], "score": round(score, 5)}
        if with_masks:
            rle = mask_util.frPyObjects([_octagon(x, y, w, h)], image["height"], image["width"])[0]
            rle["counts"] = rle["counts"].decode("ascii")
            det["segmentation"] = rle
        detections.append(det)

    for ann in dataset["annotations"]:
        hardness = difficulty[ann["category_id"]]
        if rng.random() < miss_rate * hardness:
            continue
        x, y, w, h = ann["bbox"]
        copies = 2 if rng.random() < duplicate_rate else 1
        for _ in range(copies):
            dx, dy, dw, dh = rng.normal(0.0, jitter * hardness, 4)
            category = ann["category_id"] if rng.random() > 0.05 else int(rng.choice(category_ids))
            add(ann["image_id"], category, x + dx * w, y + dy * h, w * (1 + dw), h * (1 + dh),
                float(rng.uniform(0.05, 1.0)))
    for image_id, image in images.items():
        for _ in range(int(rng.poisson(false_positives_per_image))):
            w, h = rng.uniform(8, 150, 2)
            add(image_id, int(rng.integers(1, num_categories + 1)), rng.uniform(0, image["width"] - w),
                rng.uniform(0, image["height"] - h), w, h, float(rng.uniform(0.0, 0.6)))
    return detections
