"""A second synthetic instance-segmentation dataset, unlike the built-in shapes in every visible way.

Why: a model that learns the built-in shapes (swin_scratch.data.shapes: circle/square/triangle/star
on 160x160 images) could owe it to something particular of that generator. This one shares nothing
with it: other classes (ellipse, cross, hexagon, ring: the ring has a hole, so masks are COCO RLE,
not polygons), other object sizes, non-square 128x112 images, gradient and striped backgrounds,
objects that occlude each other. It writes what a user brings: a folder with PNGs and a COCO JSON.

Image ``i`` of a split is drawn from ``numpy.random.default_rng([seed, split, i])`` alone.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_util

CATEGORIES = [{"id": 1, "name": "ellipse"}, {"id": 2, "name": "cross"}, {"id": 3, "name": "hexagon"},
              {"id": 4, "name": "ring"}]
WIDTH, HEIGHT = 128, 112
MIN_RADIUS, MAX_RADIUS = 12, 30  # pixels: the object's half extent
MAX_OBJECTS = 3
MIN_VISIBLE_FRACTION = 0.5  # an object occluded more than this is repainted elsewhere
SPLIT_IDS = {"train": 0, "val": 1}


def _background(rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: a linear colour gradient at a random angle, half the time with stripes on it."""
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys) / np.hypot(WIDTH, HEIGHT)  # (H, W) in about [-1, 1]
    start, end = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    image = start + (end - start) * ((ramp - ramp.min()) / np.ptp(ramp))[..., None]
    if rng.random() < 0.5:
        period = rng.uniform(6, 14)
        image += 18 * np.sign(np.sin(2 * np.pi * (xs * np.sin(angle) - ys * np.cos(angle)) / period))[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _shape_mask(name: str, center: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """(H, W) bool mask of one object."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cx, cy = (int(v) for v in np.round(center))
    if name == "ellipse":
        axes = (int(radius), int(radius * 0.55))
        cv2.ellipse(mask, (cx, cy), axes, float(np.degrees(angle)), 0, 360, 1, -1)
    elif name == "ring":
        cv2.circle(mask, (cx, cy), int(radius), 1, -1)
        cv2.circle(mask, (cx, cy), int(radius * 0.5), 0, -1)
    elif name == "hexagon":
        theta = angle + np.pi / 3 * np.arange(6)
        points = center + radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    elif name == "cross":
        arm = radius * 0.35
        for bar in ((radius, arm), (arm, radius)):
            box = cv2.boxPoints(((float(cx), float(cy)), (2 * bar[0], 2 * bar[1]), float(np.degrees(angle))))
            cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    else:
        raise ValueError(f"unknown shape {name!r}")
    return mask.astype(bool)


def _color_far_from(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A colour that differs from the mean of what it covers, so every object can be seen."""
    under = image[mask].mean(axis=0)
    while True:
        color = rng.uniform(0, 255, 3)
        if np.abs(color - under).sum() > 150:
            return color.astype(np.uint8)


def draw_image(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One image (H, W, 3 BGR) and its objects as (category_id, visible mask), painted back to front."""
    image = _background(rng)
    objects: list[tuple[int, np.ndarray]] = []
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        category_id = int(rng.integers(1, len(CATEGORIES) + 1))
        radius = rng.uniform(MIN_RADIUS, MAX_RADIUS)
        center = rng.uniform([radius * 0.6, radius * 0.6], [WIDTH - radius * 0.6, HEIGHT - radius * 0.6])
        mask = _shape_mask(CATEGORIES[category_id - 1]["name"], center, radius, rng.uniform(0, np.pi))
        remaining = [(cid, visible & ~mask) for cid, visible in objects]
        if mask.sum() < 40 or any(left.sum() < MIN_VISIBLE_FRACTION * visible.sum()
                                  for (_, visible), (_, left) in zip(objects, remaining)):
            continue  # would hide an earlier object too much: leave this one out
        image[mask] = _color_far_from(rng, image, mask)
        objects = remaining + [(category_id, mask)]
    return image, objects


def _annotation(category_id: int, mask: np.ndarray, image_id: int, annotation_id: int) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return {
        "id": annotation_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0,
        "segmentation": rle, "area": float(mask.sum()), "bbox": [float(v) for v in mask_util.toBbox(rle)],
    }


def write_other_shapes(root: Path, split: str, num_images: int, seed: int = 0) -> Path:
    """``root/<split>.json`` (COCO instances, RLE masks) with its PNGs under ``root/<split>/``."""
    images, annotations = [], []
    (root / split).mkdir(parents=True, exist_ok=True)
    for index in range(num_images):
        image, objects = draw_image(np.random.default_rng([seed, SPLIT_IDS[split], index]))
        file_name = f"{split}/{index:05d}.png"
        cv2.imwrite(str(root / file_name), image)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": WIDTH, "height": HEIGHT})
        for category_id, mask in objects:
            annotations.append(_annotation(category_id, mask, image_id, len(annotations) + 1))
    path = root / f"{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return path
