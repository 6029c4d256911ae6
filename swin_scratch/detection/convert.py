"""Turn Swin checkpoints of any layout into the official layout or into files ``MODEL.WEIGHTS`` loads.

The input may be any layout :mod:`swin_scratch.weights.layouts` knows (a path, URL or Hugging Face
folder); the report says which one was read.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from swin_scratch.detection.backbone import swin_key_prefix, swin_module
from swin_scratch.weights.files import atomic_write_bytes
from swin_scratch.weights.swin import load_swin_checkpoint, swin_state_dict

TARGETS = ("detectron2", "official")


def convert_to_official(source: str | os.PathLike | dict[str, Any], output: str | os.PathLike) -> dict[str, Any]:
    """Write the Swin weights of ``source`` under microsoft/Swin-Transformer's keys (``{"model": ...}``)."""
    official, layout = swin_state_dict(source if isinstance(source, dict) else str(source))
    _write(output, {"model": official})
    return {"layout": layout.name, "num_tensors": len(official), "prefix": ""}


def convert_swin_checkpoint(
    source: str | os.PathLike | dict[str, Any], cfg, output: str | os.PathLike
) -> dict[str, Any]:
    """Load a Swin checkpoint into the config's Swin (resizing windows if needed) and save it d2-style.

    Only the backbone is kept. ``output`` ending in ``.pkl`` is written as detectron2's model-zoo
    files are (numpy arrays), anything else with ``torch.save``. Returns the loading report.
    """
    backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    swin = swin_module(backbone)
    report = load_swin_checkpoint(swin, source if isinstance(source, dict) else str(source))
    prefix = "backbone." + swin_key_prefix(backbone)  # the detector's key for its backbone
    weights = {prefix + key: value for key, value in swin.state_dict().items()}
    if str(output).endswith(".pkl"):
        weights = {key: value.numpy() for key, value in weights.items()}
    _write(output, {"model": weights, "__author__": "swin_scratch convert", "matching_heuristics": False})
    return {"report": report, "layout": report.layout, "prefix": prefix, "num_tensors": len(weights)}


def _write(output: str | os.PathLike, data: dict[str, Any]) -> None:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    if str(output).endswith(".pkl"):
        atomic_write_bytes(output, lambda handle: pickle.dump(data, handle, protocol=4))
    else:
        atomic_write_bytes(output, lambda handle: torch.save(data, handle))
