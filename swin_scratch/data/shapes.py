"""A deterministic generator of a small COCO-format instance-segmentation dataset: "shapes".

Why it exists: ``make demo`` must train and evaluate a Swin Mask R-CNN on 2 CPU cores in minutes,
with no download. The data is therefore small (160x160 images), has 4 easy-to-tell classes, and
still exercises what COCO has: several objects per image, overlap and occlusion, varied
backgrounds, polygon masks.

Each image is painted back to front. An object's annotation is its *visible* part (what later
objects leave uncovered), traced into polygons with ``cv2.findContours``. Placements that would
leave an object mostly hidden, cut into slivers, or with a hole (which a COCO polygon cannot
express) are re-drawn, so every annotation matches what a model can see.

Determinism: image ``i`` of a split is drawn from ``numpy.random.default_rng([seed, split, i])``
alone, so the same seed gives byte-identical PNGs and JSON, and more images only append.
Only numpy, OpenCV and tqdm are imported: no torch, no detectron2.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from .paths import default_shapes_root

CATEGORIES: list[dict] = [
    {"id": 1, "name": "circle", "supercategory": "shape"},
    {"id": 2, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
    {"id": 4, "name": "star", "supercategory": "shape"},
]
CLASS_NAMES: list[str] = [c["name"] for c in CATEGORIES]
# One RGB color per class for drawings (the images themselves use random colors per object).
CLASS_COLORS: list[tuple[int, int, int]] = [(230, 80, 60), (60, 140, 230), (70, 190, 90), (240, 190, 40)]

SPLITS = ("train", "val")
MANIFEST_NAME = "manifest.json"
GENERATOR_ID = "swin_scratch.data.shapes"
GENERATOR_VERSION = 1  # bump when the drawing changes, so old datasets on disk are regenerated

_SUBPIXEL_BITS = 4  # cv2 drawing with fractional coordinates: points are scaled by 2**4


class ShapesDatasetError(RuntimeError):
    """The dataset cannot be written where asked; the message names the path and the way out."""


@dataclass(frozen=True)
class ShapesConfig:
    """Everything that determines the dataset's bytes (recorded in the manifest)."""

    seed: int = 0
    num_train: int = 800
    num_val: int = 100
    image_size: int = 160  # square images; make demo trains at short side 128-192
    min_objects: int = 1
    max_objects: int = 4
    min_radius_frac: float = 0.10  # object circumradius, as a fraction of the image size
    max_radius_frac: float = 0.25
    overlap_prob: float = 0.5  # chance that an object is placed against an earlier one
    min_visible_frac: float = 0.45  # an object keeps at least this much of its area visible
    min_fragment_area: int = 30  # pixels; no visible piece of an object is smaller (no slivers)

    def __post_init__(self) -> None:
        if self.num_train < 0 or self.num_val < 0:
            raise ValueError(f"image counts must be >= 0, got num_train={self.num_train}, num_val={self.num_val}")
        if self.image_size < 48:
            raise ValueError(f"image_size must be >= 48 pixels, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")

    def num_images(self, split: str) -> int:
        return {"train": self.num_train, "val": self.num_val}[split]


@dataclass
class ShapeObject:
    """One painted object: its class, its full (amodal) mask and its visible mask."""

    category_id: int
    color: tuple[int, int, int]  # BGR, as painted
    full_mask: np.ndarray  # (H, W) bool
    visible_mask: np.ndarray | None = field(repr=False, default=None)  # (H, W) bool, set after painting


@dataclass(frozen=True)
class GenerationResult:
    root: Path
    generated: bool  # False: an identical dataset was already there
    num_images: dict[str, int]
    num_annotations: dict[str, int]

    def annotation_file(self, split: str) -> Path:
        return annotation_path(self.root, split)

    def image_dir(self, split: str) -> Path:
        return image_dir(self.root, split)


def annotation_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}.json"


def image_dir(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / split


# ---------------------------------------------------------------------------------------------
# Drawing one image
# ---------------------------------------------------------------------------------------------

def _regular_polygon(center: np.ndarray, radius: float, sides: int, angle: float) -> np.ndarray:
    theta = angle + 2 * np.pi * np.arange(sides) / sides
    return center + radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)  # (sides, 2) x, y


def _star(center: np.ndarray, radius: float, angle: float, inner_ratio: float = 0.5) -> np.ndarray:
    theta = angle + np.pi * np.arange(10) / 5
    radii = np.where(np.arange(10) % 2 == 0, radius, radius * inner_ratio)
    return center + radii[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)  # (10, 2)


def shape_mask(category_id: int, center: np.ndarray, radius: float, angle: float, size: int) -> np.ndarray:
    """(size, size) bool mask of one shape; ``radius`` is its circumradius in pixels."""
    mask = np.zeros((size, size), np.uint8)
    scale = 1 << _SUBPIXEL_BITS
    name = CLASS_NAMES[category_id - 1]
    if name == "circle":
        cx, cy = np.round(center * scale).astype(int)
        cv2.circle(mask, (int(cx), int(cy)), int(round(radius * scale)), 1, -1, cv2.LINE_8, _SUBPIXEL_BITS)
        return mask.astype(bool)
    if name == "square":
        points = _regular_polygon(center, radius, 4, angle)
    elif name == "triangle":
        points = _regular_polygon(center, radius, 3, angle)
    elif name == "star":
        points = _star(center, radius, angle)
    else:  # pragma: no cover - CATEGORIES and this function change together
        raise ValueError(f"unknown shape {name!r}")
    cv2.fillPoly(mask, [np.round(points * scale).astype(np.int32)], 1, cv2.LINE_8, _SUBPIXEL_BITS)
    return mask.astype(bool)


def _random_color(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    """A BGR color (float 0..255) from HSV ranges."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def draw_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float BGR: a solid color, or a linear gradient between two colors at a random angle."""
    first = _random_color(rng, (0.0, 0.6), (0.15, 0.95))
    if rng.random() < 0.35:
        return np.broadcast_to(first, (size, size, 3)).copy()
    second = _random_color(rng, (0.0, 0.6), (0.15, 0.95))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (np.cos(angle) * xs + np.sin(angle) * ys)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)  # (H, W) in [0, 1]
    return first + t[..., None] * (second - first)


def _color_far_from(rng: np.random.Generator, others: list[np.ndarray], min_distance: float) -> np.ndarray:
    """A saturated object color at least ``min_distance`` (BGR Euclidean) from each of ``others``."""
    best, best_distance = None, -1.0
    for _ in range(30):
        color = _random_color(rng, (0.55, 1.0), (0.5, 1.0))
        distance = min((float(np.linalg.norm(color - other)) for other in others), default=np.inf)
        if distance >= min_distance:
            return color
        if distance > best_distance:
            best, best_distance = color, distance
    return best


def _visible_is_clean(visible: np.ndarray, full_area: int, config: ShapesConfig) -> bool:
    """Enough of the object shows, in pieces that are not slivers and have no holes."""
    if visible.sum() < config.min_visible_frac * full_area:
        return False
    contours, hierarchy = cv2.findContours(visible.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is not None and (hierarchy[0][:, 3] >= 0).any():  # a contour with a parent is a hole
        return False
    count, _, stats, _ = cv2.connectedComponentsWithStats(visible.astype(np.uint8), connectivity=8)
    return bool((stats[1:, cv2.CC_STAT_AREA] >= config.min_fragment_area).all())


def _visible_masks(full_masks: list[np.ndarray]) -> list[np.ndarray]:
    """Painter's algorithm: each object minus everything painted after it."""
    covered = np.zeros_like(full_masks[0])
    visible = [None] * len(full_masks)
    for index in range(len(full_masks) - 1, -1, -1):
        visible[index] = full_masks[index] & ~covered
        covered |= full_masks[index]
    return visible


def _place_object(rng: np.random.Generator, placed: list[tuple[np.ndarray, float]], config: ShapesConfig
                  ) -> tuple[int, np.ndarray, float, float]:
    size = config.image_size
    radius = rng.uniform(config.min_radius_frac, config.max_radius_frac) * size
    category_id = int(rng.integers(1, len(CATEGORIES) + 1))
    angle = rng.uniform(0, 2 * np.pi)
    low, high = radius + 1, size - radius - 1  # the whole object stays inside the image
    if placed and rng.random() < config.overlap_prob:
        anchor_center, anchor_radius = placed[int(rng.integers(len(placed)))]
        distance = (anchor_radius + radius) * rng.uniform(0.45, 0.85)
        direction = rng.uniform(0, 2 * np.pi)
        center = anchor_center + distance * np.array([np.cos(direction), np.sin(direction)])
        center = np.clip(center, low, high)
    else:
        center = rng.uniform(low, high, size=2)
    return category_id, center, radius, angle


def draw_image(rng: np.random.Generator, config: ShapesConfig) -> tuple[np.ndarray, list[ShapeObject]]:
    """One (H, W, 3) uint8 BGR image and its objects, back to front, with visible masks set."""
    size = config.image_size
    background = draw_background(rng, size)
    background_mean = background.reshape(-1, 3).mean(axis=0)
    num_objects = int(rng.integers(config.min_objects, config.max_objects + 1))

    objects: list[ShapeObject] = []
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(num_objects):
        for _attempt in range(25):
            category_id, center, radius, angle = _place_object(rng, placed, config)
            full = shape_mask(category_id, center, radius, angle, size)
            candidate_masks = [o.full_mask for o in objects] + [full]
            visible = _visible_masks(candidate_masks)
            if all(_visible_is_clean(v, int(m.sum()), config) for v, m in zip(visible, candidate_masks)):
                break
        else:
            continue  # no clean placement: this image gets one object fewer
        color = _color_far_from(rng, [background_mean] + [np.array(o.color, np.float64) for o in objects], 90.0)
        objects.append(ShapeObject(category_id, tuple(float(c) for c in color), full))
        placed.append((center, radius))

    image = background
    for obj in objects:
        image = np.where(obj.full_mask[..., None], np.array(obj.color), image)
    noise_sigma = rng.uniform(0.0, 8.0)
    image = image + rng.normal(0.0, noise_sigma, size=image.shape)
    if objects:
        for obj, visible in zip(objects, _visible_masks([o.full_mask for o in objects])):
            obj.visible_mask = visible
    return np.clip(np.round(image), 0, 255).astype(np.uint8), objects


# ---------------------------------------------------------------------------------------------
# Masks → COCO annotations
# ---------------------------------------------------------------------------------------------

def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` tracing the outer boundary of each piece of ``mask``.

    ``findContours`` returns the centers of the boundary pixels, so its polygon misses half a
    pixel all around (~7% of a 40-pixel object's area). Each vertex is pushed half a pixel along
    the outward normal, so rasterizing the polygon (pycocotools) gives back the mask's pixels
    (IoU ~0.999); ``approxPolyDP`` then drops vertices that change nothing at sub-pixel level.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        points = contour[:, 0, :].astype(np.float64) + 0.5  # (N, 2): pixel (col, row) -> continuous center
        if len(points) < 3:
            continue
        signed_area = 0.5 * np.sum(points[:, 0] * np.roll(points[:, 1], -1) - np.roll(points[:, 0], -1) * points[:, 1])
        tangent = np.roll(points, -1, axis=0) - np.roll(points, 1, axis=0)  # (N, 2)
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
        if signed_area < 0:
            normal = -normal
        points = points + 0.5 * normal
        simplified = cv2.approxPolyDP(points.astype(np.float32)[:, None, :], 0.3, True)[:, 0, :]
        if len(simplified) >= 3:
            points = simplified
        polygons.append([round(float(v), 2) for v in points.reshape(-1)])
    return polygons


def object_annotation(obj: ShapeObject, annotation_id: int, image_id: int) -> dict:
    rows, cols = np.nonzero(obj.visible_mask)
    x0, y0 = int(cols.min()), int(rows.min())
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": obj.category_id,
        "segmentation": mask_to_polygons(obj.visible_mask),
        "area": float(obj.visible_mask.sum()),
        "bbox": [x0, y0, int(cols.max()) - x0 + 1, int(rows.max()) - y0 + 1],  # x, y, w, h in pixels
        "iscrowd": 0,
    }


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: independent of the split sizes and of other images."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def generate_split(config: ShapesConfig, split: str, root: Path, progress: bool = True) -> dict:
    """Write ``root/<split>/*.png`` and return the split's COCO dict."""
    from tqdm import tqdm

    out_dir = image_dir(root, split)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    indices: Iterable[int] = range(config.num_images(split))
    if progress:
        indices = tqdm(indices, desc=f"shapes {split}", unit="img", leave=False)
    for index in indices:
        image, objects = draw_image(image_rng(config.seed, split, index), config)
        image_id = index + 1
        file_name = f"{index:06d}.png"
        if not cv2.imwrite(str(out_dir / file_name), image):
            raise ShapesDatasetError(f"cannot write {out_dir / file_name}")
        images.append({"id": image_id, "file_name": file_name, "width": config.image_size,
                       "height": config.image_size})
        for obj in objects:
            annotations.append(object_annotation(obj, len(annotations) + 1, image_id))
    return {
        "info": {"description": f"swin_scratch shapes {split} (seed {config.seed})",
                 "version": str(GENERATOR_VERSION)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }


# ---------------------------------------------------------------------------------------------
# Writing the dataset: atomic, idempotent
# ---------------------------------------------------------------------------------------------

def _manifest(config: ShapesConfig) -> dict:
    return {"generator": GENERATOR_ID, "version": GENERATOR_VERSION, "config": asdict(config)}


def read_manifest(root: str | os.PathLike) -> dict | None:
    try:
        return json.loads((Path(root) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_complete(root: str | os.PathLike, config: ShapesConfig) -> bool:
    """True when ``root`` holds a finished dataset generated with exactly ``config``."""
    root = Path(root)
    if read_manifest(root) != _manifest(config):
        return False
    for split in SPLITS:
        if not annotation_path(root, split).is_file():
            return False
        if sum(1 for _ in image_dir(root, split).glob("*.png")) != config.num_images(split):
            return False
    return True


def _check_replaceable(root: Path) -> None:
    """Refuse to delete a folder this generator did not write (e.g. a mistyped --root)."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ShapesDatasetError(f"{root} exists and is not a directory; choose another --root")
    manifest = read_manifest(root)
    if any(root.iterdir()) and (manifest is None or manifest.get("generator") != GENERATOR_ID):
        raise ShapesDatasetError(
            f"{root} is not empty and was not written by {GENERATOR_ID} (no {MANIFEST_NAME}); "
            "refusing to replace it: choose another --root or empty it"
        )


def _counts(root: Path) -> tuple[dict[str, int], dict[str, int]]:
    num_images, num_annotations = {}, {}
    for split in SPLITS:
        coco = json.loads(annotation_path(root, split).read_text())
        num_images[split], num_annotations[split] = len(coco["images"]), len(coco["annotations"])
    return num_images, num_annotations


def generate_shapes_dataset(
    root: str | os.PathLike | None = None,
    config: ShapesConfig | None = None,
    force: bool = False,
    progress: bool = True,
) -> GenerationResult:
    """Write the dataset to ``root`` (default ``$DETECTRON2_DATASETS/shapes``) unless it is already there.

    Layout: ``train/*.png``, ``val/*.png``, ``annotations/instances_{train,val}.json``, ``manifest.json``.
    It is built in a temporary sibling folder and renamed into place, so an interrupted run never
    leaves a half-written dataset that looks complete. An existing dataset with the same config is
    kept (``generated=False``) unless ``force``.
    """
    config = config or ShapesConfig()
    root = Path(root) if root is not None else default_shapes_root()
    if not force and is_complete(root, config):
        return GenerationResult(root, False, *_counts(root))
    _check_replaceable(root)

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-tmp-", dir=root.parent))
    try:
        (staging / "annotations").mkdir()
        for split in SPLITS:
            coco = generate_split(config, split, staging, progress=progress)
            annotation_path(staging, split).write_text(json.dumps(coco, separators=(",", ":")))
        (staging / MANIFEST_NAME).write_text(json.dumps(_manifest(config), indent=2, sort_keys=True) + "\n")
        _swap_into_place(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return GenerationResult(root, True, *_counts(root))


def _swap_into_place(staging: Path, root: Path) -> None:
    """Rename ``staging`` to ``root``; an old ``root`` is moved aside first and deleted after."""
    old = None
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}-old-", dir=root.parent))
        os.rename(root, old / "dataset")
    try:
        os.rename(staging, root)
    except OSError:
        if old is not None and not root.exists():
            os.rename(old / "dataset", root)  # put the old dataset back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
