"""Turn official Swin checkpoints into files that ``MODEL.WEIGHTS`` loads into a Swin detectron2 model."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from swin_scratch.detection.backbone import swin_module
from swin_scratch.checkpoint_io import atomic_write_bytes


def swin_key_prefix(backbone: torch.nn.Module) -> str:
    """Where the Swin weights live in a detectron2 model built with this backbone, e.g. ``backbone.bottom_up.swin.``."""
    swin = swin_module(backbone)
    for name, module in backbone.named_modules():
        if module is swin:
            return f"backbone.{name}." if name else "backbone."
    raise ValueError("the backbone built from this config contains no SwinTransformer")


def convert_swin_checkpoint(source: str | os.PathLike | dict[str, Any], cfg, output: str | os.PathLike) -> dict[str, Any]:
    """Load an official checkpoint into the config's Swin (resizing windows if needed) and save it d2-style.

    Accepts microsoft/Swin-Transformer ImageNet files and Swin-Transformer-Object-Detection (mmdet)
    COCO files; only the backbone is kept. Returns the loading report.
    """
    from swin_scratch.models.swin_checkpoint import load_swin_checkpoint

    backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    swin = swin_module(backbone)
    report = load_swin_checkpoint(swin, source if isinstance(source, dict) else str(source))
    prefix = swin_key_prefix(backbone)
    weights = {prefix + key: value for key, value in swin.state_dict().items()}
    data = {"model": weights, "__author__": "swin_scratch convert_swin_checkpoint", "matching_heuristics": False}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(output, lambda handle: torch.save(data, handle))
    return {"report": report, "prefix": prefix, "num_tensors": len(weights)}
