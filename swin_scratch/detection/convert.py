"""Turn official Swin checkpoints into files that ``MODEL.WEIGHTS`` loads into a Swin detectron2 model."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from swin_scratch.detection.backbone import swin_key_prefix, swin_module
from swin_scratch.weights.files import atomic_write_bytes
from swin_scratch.weights.swin import load_swin_checkpoint


def convert_swin_checkpoint(source: str | os.PathLike | dict[str, Any], cfg, output: str | os.PathLike) -> dict[str, Any]:
    """Load an official checkpoint into the config's Swin (resizing windows if needed) and save it d2-style.

    Accepts microsoft/Swin-Transformer ImageNet files and Swin-Transformer-Object-Detection (mmdet)
    COCO files; only the backbone is kept. Returns the loading report.
    """
    backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    swin = swin_module(backbone)
    report = load_swin_checkpoint(swin, source if isinstance(source, dict) else str(source))
    prefix = "backbone." + swin_key_prefix(backbone)  # the detector's key for its backbone
    weights = {prefix + key: value for key, value in swin.state_dict().items()}
    data = {"model": weights, "__author__": "swin_scratch convert_swin_checkpoint", "matching_heuristics": False}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(output, lambda handle: torch.save(data, handle))
    return {"report": report, "prefix": prefix, "num_tensors": len(weights)}
