"""Load Swin checkpoints into a Swin model: the one place foreign Swin weights are translated.

Handles microsoft/Swin-Transformer files (``{"model": ...}``), mmdet/Swin-Transformer-Object-Detection
files (``{"state_dict": {"backbone.…": …}}``), bare state dicts and ``module.`` prefixes; ignores the
stored ``relative_position_index`` / ``attn_mask`` buffers; drops heads that do not fit; resizes
relative position bias tables (other window size) and absolute position embeddings (other image size).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from swin_scratch.weights.files import CheckpointError, read_checkpoint

logger = logging.getLogger(__name__)

IGNORED_BUFFERS = ("relative_position_index", "attn_mask")
# where a Swin backbone's keys start in the official layouts (mmdet detectors put it under ``backbone.``)
OFFICIAL_SWIN_PREFIXES = ("layers.0.blocks.", "backbone.layers.0.blocks.")


def looks_like_official_swin(state_dict: Mapping[str, Any]) -> bool:
    """True for microsoft/Swin-Transformer (``layers.0.blocks...``) or mmdet (``backbone.layers...``) layouts."""
    return any(key.startswith(OFFICIAL_SWIN_PREFIXES) for key in state_dict)


def bias_table_window(table_rows: int) -> int:
    """The window size M of a relative position bias table with (2M-1)² rows."""
    return (math.isqrt(table_rows) + 1) // 2


def variant_mismatch_error(key: str, found: tuple[int, ...], expected: tuple[int, ...], what: str) -> CheckpointError:
    """One error for a checkpoint tensor whose shape says it is from another variant; ``what`` says what to do."""
    return CheckpointError(
        f"checkpoint key {key!r} has shape {tuple(found)} but the model expects {tuple(expected)}: the checkpoint "
        f"is from another Swin variant (embed_dim / depths / heads); {what}"
    )


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        def short(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")

        lines = [f"loaded {len(self.loaded)} tensors"]
        for name in ("resized", "dropped", "missing", "unexpected"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"{name}: {short(keys)}")
        return "; ".join(lines)


def swin_state_dict(checkpoint: str | os.PathLike | Mapping[str, Any]) -> dict[str, Tensor]:
    """The Swin state dict inside any official layout, with ``module.``/``backbone.`` prefixes removed.

    ``checkpoint`` is a path, an ``http(s)://`` URL (read through :func:`read_checkpoint`) or a loaded dict.
    """
    state = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    for wrapper in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(state).__name__}, not a state dict")
    state = {_strip(key, "module."): value for key, value in state.items() if isinstance(value, Tensor)}
    if any(key.startswith("backbone.") for key in state):  # mmdet: keep the backbone only
        state = {key[len("backbone."):]: value for key, value in state.items() if key.startswith("backbone.")}
    return {key: value for key, value in state.items() if not key.endswith(IGNORED_BUFFERS)}


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def resize_relative_position_bias_table(table: Tensor, target_window: int) -> Tensor:
    """((2M-1)², heads) -> ((2M'-1)², heads) by bicubic interpolation over the 2-D offset grid."""
    side = math.isqrt(table.shape[0])
    target_side = 2 * target_window - 1
    grid = table.T.reshape(1, table.shape[1], side, side)
    grid = F.interpolate(grid.float(), size=(target_side, target_side), mode="bicubic", align_corners=False)
    return grid.reshape(table.shape[1], -1).T.to(table.dtype)


def resize_absolute_position_embedding(embedding: Tensor, target_tokens: int) -> Tensor:
    """(1, N, C) or the detection repo's (1, C, H, W) -> (1, N', C) on a square grid."""
    if embedding.dim() == 4:
        embedding = embedding.flatten(2).transpose(1, 2)
    side, target_side = math.isqrt(embedding.shape[1]), math.isqrt(target_tokens)
    if side == target_side:
        return embedding
    grid = embedding.transpose(1, 2).reshape(1, -1, side, side)
    grid = F.interpolate(grid, size=(target_side, target_side), mode="bicubic", align_corners=False)
    return grid.flatten(2).transpose(1, 2)


def _adapt(key: str, value: Tensor, target: Tensor, report: LoadReport) -> Tensor | None:
    """The tensor to load for ``key``, resized if that is meaningful; None to drop it."""
    if value.shape == target.shape:
        return value
    if key.endswith("relative_position_bias_table") and value.shape[1] == target.shape[1]:
        report.resized.append(f"{key} {tuple(value.shape)}->{tuple(target.shape)}")
        return resize_relative_position_bias_table(value, bias_table_window(target.shape[0]))
    if key == "absolute_pos_embed" and value.numel() // value.shape[0] % target.shape[-1] == 0:
        resized = resize_absolute_position_embedding(value, target.shape[1])
        if resized.shape == target.shape:
            report.resized.append(f"{key} {tuple(value.shape)}->{tuple(target.shape)}")
            return resized
    if key.startswith("head."):
        report.dropped.append(f"{key} {tuple(value.shape)} (model has {tuple(target.shape)})")
        return None
    raise variant_mismatch_error(key, value.shape, target.shape, "build the matching model")


def load_swin_checkpoint(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Any]) -> LoadReport:
    """Load official Swin weights into ``model`` (classification or detection mode); returns and logs a report."""
    state = swin_state_dict(checkpoint)
    target = model.state_dict()
    report = LoadReport()
    to_load: dict[str, Tensor] = {}
    for key, value in state.items():
        if key not in target:
            if key.startswith("layers.") and ".blocks." in key:
                raise CheckpointError(
                    f"checkpoint key {key!r} {tuple(value.shape)} has no place in the model: the checkpoint has more "
                    "blocks (another Swin variant, e.g. Swin-S/B into Swin-T); build the matching model"
                )
            (report.dropped if key.startswith(("head.", "norm.")) else report.unexpected).append(key)
            continue
        adapted = _adapt(key, value, target[key], report)
        if adapted is not None:
            to_load[key] = adapted
    result = model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in result.missing_keys if not k.endswith(IGNORED_BUFFERS))
    logger.info("load_swin_checkpoint: %s", report)
    return report
