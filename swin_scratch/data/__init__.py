"""The built-in demo data: a generated COCO-format "shapes" dataset and where datasets live on disk.

Needs only numpy/OpenCV; its detectron2 registration is :mod:`swin_scratch.detection.datasets`.
"""
from .paths import datasets_root, default_shapes_root
from .shapes import (
    CATEGORIES,
    CLASS_COLORS,
    CLASS_NAMES,
    GenerationResult,
    ShapesConfig,
    ShapesDatasetError,
    draw_image,
    generate_shapes_dataset,
    is_complete,
    mask_to_polygons,
)

__all__ = [
    "CATEGORIES",
    "CLASS_COLORS",
    "CLASS_NAMES",
    "GenerationResult",
    "ShapesConfig",
    "ShapesDatasetError",
    "datasets_root",
    "default_shapes_root",
    "draw_image",
    "generate_shapes_dataset",
    "is_complete",
    "mask_to_polygons",
]
