"""Pictures: detector predictions on images, training curves from ``metrics.json``, dataset previews.

``plot_metrics`` needs only matplotlib; the names that need detectron2 are imported on first use,
so ``tools/plot_metrics.py`` does not import torch.
"""
from typing import Any

from .metrics import MetricsFileError, metric_series, plot_metrics, read_metrics

_LAZY = {
    "DemoInputError": "predictions",
    "UnreadableImageError": "predictions",
    "DemoConfigError": "predictions",
    "build_predictor": "predictions",
    "check_images_readable": "predictions",
    "collect_image_paths": "predictions",
    "draw_predictions": "predictions",
    "instances_to_dict": "predictions",
    "predict_and_draw": "predictions",
    "read_image_bgr": "predictions",
    "run_detector": "predictions",
    "draw_shapes_preview": "preview",
}

__all__ = ["MetricsFileError", "metric_series", "plot_metrics", "read_metrics", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
