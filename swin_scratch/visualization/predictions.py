"""Run a detector on image files; write, per image, a picture of its predictions and a JSON of them.

What ``tools/demo.py`` does, importable so tests can drive it with any detectron2 model.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Drawn pictures get at least this many pixels on their short side, so labels stay legible on
# the 160-pixel demo images.
MIN_DRAWN_SIDE = 480


class DemoInputError(ValueError):
    """An input path that is missing or names no images; the message names it."""


class UnreadableImageError(DemoInputError):
    """A file that is not a readable image; the message names the file and why."""


class DemoConfigError(DemoInputError):
    """A config, override or weights file the demo cannot use; the message says which and why."""


def collect_image_paths(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, and the image files (by extension, sorted) of each directory."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DemoInputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in directory {path}")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise DemoInputError(f"input not found: {path}")
    if not paths:
        raise DemoInputError("no input images given")
    return paths


def dataset_image_dir(name: str) -> Path:
    """The image folder of a registered detectron2 dataset (where its registration points, so the
    built-in shapes data is found wherever DETECTRON2_DATASETS put it)."""
    from detectron2.data import MetadataCatalog

    image_root = getattr(MetadataCatalog.get(name), "image_root", None)
    if not image_root:
        raise DemoInputError(f"dataset {name!r} has no image folder registered; give the images with --input")
    return Path(image_root)


def read_image_bgr(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 BGR, EXIF orientation applied (as detectron2 reads training images)."""
    from detectron2.data.detection_utils import read_image
    from PIL import UnidentifiedImageError

    try:
        image = read_image(str(path), format="BGR")
    except UnidentifiedImageError:
        raise UnreadableImageError(f"cannot read image {path}: not an image format PIL recognizes") from None
    except Exception as err:  # PIL raises several types for truncated or odd files
        raise UnreadableImageError(f"cannot read image {path}: {type(err).__name__}: {err}") from None
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise UnreadableImageError(f"cannot read image {path}: unexpected shape {image.shape}")
    return image


def check_images_readable(paths: Sequence[str | os.PathLike]) -> None:
    """Decode every image once, so a bad file fails before any model is built or run."""
    for path in paths:
        read_image_bgr(path)


def run_detector(predictor_or_model: Any, image_bgr: np.ndarray):
    """``Instances`` on CPU for one image, from a ``DefaultPredictor`` (or any callable returning
    ``{"instances": ...}``) or from a detectron2 meta-architecture module (the image is used at its size)."""
    import torch

    if isinstance(predictor_or_model, torch.nn.Module):
        model = predictor_or_model
        model.eval()
        image = image_bgr if getattr(model, "input_format", "BGR") == "BGR" else image_bgr[:, :, ::-1]
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)).astype("float32"))  # (3, H, W)
        height, width = image_bgr.shape[:2]
        with torch.no_grad():
            outputs = model([{"image": tensor, "height": height, "width": width}])[0]
    else:
        predictor: Callable[[np.ndarray], dict] = predictor_or_model
        outputs = predictor(image_bgr)
    return outputs["instances"].to("cpu")


@dataclass
class InferenceSetup:
    """What the demo needs besides the images: a frozen config, and class names/colors to draw with."""

    cfg: Any
    metadata: Any  # detectron2 Metadata with thing_classes (maybe thing_colors), or None: classes named by index


def load_inference_setup(config_file: str, weights: str, overrides: Sequence[str] = (),
                         dataset: str | None = None) -> InferenceSetup:
    """The config (file, ``overrides`` KEY VALUE..., then ``weights``), on a device this machine has.

    Class names, in order of preference: the registered ``dataset`` named, the classes saved in the
    checkpoint by training (which also set NUM_CLASSES: a model trained on your own data runs with
    the config it was trained from), the config's first test dataset (``DATASETS.TEST_JSON`` works).
    """
    from swin_scratch.coco.errors import DatasetFormatError, DatasetNotFoundError
    from swin_scratch.detection.checkpoint_classes import classes_in_checkpoint
    from swin_scratch.detection.config import ConfigError
    from swin_scratch.detection.tool_config import tool_config
    from swin_scratch.weights.files import is_url

    overrides = list(overrides)
    if len(overrides) % 2:
        raise DemoConfigError(f"--opts must be KEY VALUE pairs, got an odd count: {overrides}")
    if not is_url(weights) and not Path(weights).is_file():
        raise DemoConfigError(f"weights not found: {weights} (make demo writes output/swin_shapes/model_final.pth)")
    try:
        cfg = tool_config(config_file, overrides, weights=weights)
    except (ConfigError, DatasetFormatError, DatasetNotFoundError) as err:
        raise DemoConfigError(str(err)) from None
    stored = classes_in_checkpoint(weights)
    cfg.freeze()
    return InferenceSetup(cfg, _class_metadata(cfg, dataset, stored, weights))


def _class_metadata(cfg, dataset: str | None, stored: dict[str, Any] | None, weights: str) -> Any:
    """The named dataset's metadata, else the checkpoint's saved classes, else the first test dataset's."""
    from detectron2.data import MetadataCatalog
    from detectron2.data.catalog import Metadata

    if dataset:
        return MetadataCatalog.get(dataset)
    if stored:
        return Metadata(name=f"classes of {weights}").set(
            **{key: stored[key] for key in ("thing_classes", "thing_colors") if key in stored})
    return MetadataCatalog.get(cfg.DATASETS.TEST[0]) if len(cfg.DATASETS.TEST) else None


def build_predictor(cfg):
    """A predictor that resizes like ``DefaultPredictor`` and loads weights through the project's safe loader."""
    from swin_scratch.detection.predictor import SwinPredictor

    return SwinPredictor(cfg)


def _class_names(metadata: Any, num_needed: int) -> list[str]:
    names = list(getattr(metadata, "thing_classes", None) or []) if metadata is not None else []
    return names + [f"class {index}" for index in range(len(names), num_needed)]


def instances_to_dict(instances, class_names: Sequence[str]) -> dict[str, Any]:
    """Plain-JSON predictions: boxes (XYXY, pixels), scores, classes (contiguous ids), names, RLE masks."""
    result: dict[str, Any] = {
        "boxes": [[round(float(v), 2) for v in box] for box in instances.pred_boxes.tensor.tolist()]
        if instances.has("pred_boxes") else [],
        "scores": [round(float(s), 5) for s in instances.scores.tolist()] if instances.has("scores") else [],
        "classes": [int(c) for c in instances.pred_classes.tolist()] if instances.has("pred_classes") else [],
    }
    result["class_names"] = [class_names[c] for c in result["classes"]]
    if instances.has("pred_masks"):
        import pycocotools.mask as mask_util

        masks = np.asarray(instances.pred_masks, dtype=np.uint8)  # (N, H, W)
        rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if len(masks) else []
        result["masks"] = [{"size": rle["size"], "counts": rle["counts"].decode("ascii")} for rle in rles]
    return result


def draw_predictions(image_bgr: np.ndarray, instances, metadata: Any = None) -> np.ndarray:
    """(H', W', 3) uint8 RGB picture: boxes, masks, class names and scores (detectron2's Visualizer)."""
    from detectron2.data.catalog import Metadata
    from detectron2.utils.visualizer import ColorMode, Visualizer

    num_classes = int(instances.pred_classes.max()) + 1 if instances.has("pred_classes") and len(instances) else 0
    drawing_metadata = Metadata(name="demo").set(thing_classes=_class_names(metadata, num_classes))
    colors = getattr(metadata, "thing_colors", None) if metadata is not None else None
    if colors and len(colors) >= num_classes:  # one color per class; else the Visualizer picks random ones
        drawing_metadata.set(thing_colors=list(colors))
    mode = ColorMode.SEGMENTATION if drawing_metadata.get("thing_colors") else ColorMode.IMAGE
    scale = max(1.0, MIN_DRAWN_SIDE / min(image_bgr.shape[:2]))
    visualizer = Visualizer(image_bgr[:, :, ::-1], drawing_metadata, scale=scale, instance_mode=mode)
    return visualizer.draw_instance_predictions(instances).get_image()


def _output_stems(paths: Sequence[Path]) -> list[str]:
    """File stems for the outputs; repeated stems (same name in two folders) get ``-2``, ``-3``..."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        stems.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return stems


def predict_and_draw(
    predictor_or_model: Any,
    image_paths: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    metadata: Any = None,
    score_threshold: float = 0.5,
) -> list[Path]:
    """For each image write ``<stem>_pred.png`` (drawn predictions) and ``<stem>_pred.json``.

    Every image is read before the model runs, so an unreadable file fails fast with
    :class:`UnreadableImageError` naming it. Predictions scoring below ``score_threshold`` are
    left out of both files. ``metadata`` (e.g. ``MetadataCatalog.get("shapes_val")``) gives class
    names and colors; without it classes are named by id. Returns the written paths, PNG then
    JSON for each image, in input order.
    """
    from PIL import Image

    paths = [Path(p) for p in image_paths]
    check_images_readable(paths)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    written: list[Path] = []
    for path, stem in zip(paths, _output_stems(paths)):
        image = read_image_bgr(path)
        instances = run_detector(predictor_or_model, image)
        instances = instances[instances.scores >= score_threshold]
        num_classes = int(instances.pred_classes.max()) + 1 if len(instances) else 0

        picture_path = output_dir / f"{stem}_pred.png"
        Image.fromarray(draw_predictions(image, instances, metadata)).save(picture_path)
        record = {
            "image": str(path),
            "height": int(image.shape[0]),
            "width": int(image.shape[1]),
            "score_threshold": score_threshold,
            **instances_to_dict(instances, _class_names(metadata, num_classes)),
        }
        json_path = output_dir / f"{stem}_pred.json"
        json_path.write_text(json.dumps(record) + "\n")
        written += [picture_path, json_path]
    return written
