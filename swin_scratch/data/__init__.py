"""The built-in demo data: a generated COCO-format "shapes" dataset and its detectron2 registration.

``generate_shapes_dataset`` needs only numpy/OpenCV; ``register_shapes_datasets`` imports detectron2.
"""
from .datasets import SHAPES_DATASETS, register_shapes_datasets
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
    "SHAPES_DATASETS",
    "ShapesConfig",
    "ShapesDatasetError",
    "datasets_root",
    "default_shapes_root",
    "draw_image",
    "generate_shapes_dataset",
    "is_complete",
    "mask_to_polygons",
    "register_shapes_datasets",
]
