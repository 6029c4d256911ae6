"""Load Swin checkpoints into a Swin model: the one place foreign Swin weights are translated.

Any layout of :mod:`.layouts` (official V1/V2, Swin-Transformer-Object-Detection, mmdet, timm,
torchvision, Hugging Face, detectron2 files), from a path, a URL, a Hugging Face folder or a loaded
dict, is turned into the official keys, then loaded: bias tables resized to the model's window,
absolute position embeddings to its image size, classification heads that do not fit dropped.

Nothing is half-loaded in silence: a model parameter the checkpoint does not fill, or a
checkpoint tensor the model has no place for, is an error naming them, unless the caller asks for
a partial load (``strict=False``), which then warns with the same names. The exceptions are what a
checkpoint is expected not to match: a classifier's ``head``/``norm`` loaded into a detection
backbone, and a detection backbone's per-stage output norms (``norm0``..``norm3``), which ImageNet
checkpoints do not have.
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from swin_scratch.weights.files import CheckpointError, read_checkpoint
from swin_scratch.weights.layouts import IGNORED_BUFFERS, Layout, is_swin_v2, to_official

logger = logging.getLogger(__name__)

CLASSIFIER_KEYS = re.compile(r"(head|norm)\.(weight|bias)")  # a classifier's own: not part of a detection backbone
DETECTION_NORM_KEYS = re.compile(r"norm\d+\.(weight|bias)")  # a detection backbone's own: new when fine-tuning
BLOCK_KEY = re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.")


def bias_table_window(table_rows: int) -> int:
    """The window size M of a relative position bias table with (2M-1)² rows."""
    return (math.isqrt(table_rows) + 1) // 2


def describe_variant(state: Mapping[str, Any]) -> str:
    """``V1, embed_dim 96, depths (2, 2, 6, 2)`` for an official-key state dict (model's or checkpoint's)."""
    stages: dict[int, set[int]] = {}
    for key in state:
        match = BLOCK_KEY.match(key)
        if match:
            stages.setdefault(int(match[1]), set()).add(int(match[2]))
    depths = tuple(len(stages[stage]) for stage in sorted(stages))
    embed = state.get("patch_embed.proj.weight")
    width = f"embed_dim {embed.shape[0]}, " if embed is not None else ""
    return f"V{2 if is_swin_v2(state) else 1}, {width}depths {depths}"


def variant_mismatch_error(key: str, found: tuple[int, ...], expected: tuple[int, ...], what: str) -> CheckpointError:
    """One error for a checkpoint tensor whose shape says it is from another variant; ``what`` says what to do."""
    return CheckpointError(
        f"checkpoint key {key!r} has shape {tuple(found)} but the model expects {tuple(expected)}: the checkpoint "
        f"is from another Swin variant (embed_dim / depths / heads); {what}"
    )


@dataclass
class LoadReport:
    """What :func:`load_swin_checkpoint` did; ``str()`` is its one log line."""

    layout: str = ""
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)  # expected to be new: a head, detection output norms
    left_out: list[str] = field(default_factory=list)  # outside the backbone: a detector's neck and heads

    def __str__(self) -> str:
        lines = [f"layout {self.layout}" if self.layout else "", f"loaded {len(self.loaded)} tensors"]
        for name in ("resized", "dropped", "initialised", "missing", "unexpected", "left_out"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"{name.replace('_', ' ')}: {_short(keys)}")
        return "; ".join(line for line in lines if line)


def _short(keys: list[str], count: int = 6) -> str:
    return ", ".join(keys[:count]) + (f", ... ({len(keys)} in all)" if len(keys) > count else "")


def swin_state_dict(checkpoint: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Tensor], Layout]:
    """The Swin weights of any layout under official keys, and the layout they came in.

    ``checkpoint`` is a path (a file or a Hugging Face folder), an ``http(s)://`` URL (read through
    :func:`read_checkpoint`) or a loaded dict.
    """
    state = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    return to_official(state)


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


def _check_same_version(model_state: Mapping[str, Tensor], official: Mapping[str, Tensor], layout: Layout) -> None:
    model_v2, checkpoint_v2 = is_swin_v2(model_state), is_swin_v2(official)
    if model_v2 != checkpoint_v2:
        have, want = ("V2", "V1") if checkpoint_v2 else ("V1", "V2")
        build = "swin_v2_tiny/small/base (MODEL.SWIN.VERSION 2)" if checkpoint_v2 else "swin_tiny/small/base"
        raise CheckpointError(
            f"the checkpoint holds Swin {have} weights ({layout.name}) but the model is a Swin {want}: "
            f"build a Swin {have} model ({build}) for these weights"
        )


def _expected_mismatch(key: str, detection_model: bool) -> bool:
    """Keys a checkpoint may lack or carry without harm (see the module docstring)."""
    if detection_model:
        return bool(CLASSIFIER_KEYS.fullmatch(key) or DETECTION_NORM_KEYS.fullmatch(key))
    return key.startswith("head.")


def load_swin_checkpoint(
    model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Any], strict: bool = True
) -> LoadReport:
    """Load Swin weights of any layout into ``model`` (classification or detection mode, V1 or V2).

    Returns (and logs) a report naming the layout detected. Raises :class:`CheckpointError` for weights
    of another architecture, version (V1/V2) or variant, and, with ``strict`` (the default), when any
    model parameter stays unfilled or any checkpoint tensor has no place in the model; ``strict=False``
    loads what fits and warns with the names of what did not.
    """
    official, layout = swin_state_dict(checkpoint)
    target = model.state_dict()
    _check_same_version(target, official, layout)
    detection_model = any(DETECTION_NORM_KEYS.fullmatch(key) for key in target)
    report = LoadReport(layout=layout.name, left_out=[key for key in layout.left_out if key not in layout.unplaced],
                        unexpected=list(layout.unplaced))
    to_load: dict[str, Tensor] = {}
    for key, value in official.items():
        if key not in target:
            if BLOCK_KEY.match(key):
                raise CheckpointError(
                    f"checkpoint key {key!r} {tuple(value.shape)} has no place in the model: the checkpoint has more "
                    f"blocks ({describe_variant(official)}; the model: {describe_variant(target)}); build the "
                    "matching model"
                )
            (report.dropped if _expected_mismatch(key, detection_model) else report.unexpected).append(key)
            continue
        adapted = _adapt(key, value, target[key], report)
        if adapted is not None:
            to_load[key] = adapted
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    not_loaded = [key for key in target if key not in to_load and not key.endswith(IGNORED_BUFFERS)]
    report.initialised = sorted(key for key in not_loaded if _expected_mismatch(key, detection_model))
    report.missing = sorted(key for key in not_loaded if not _expected_mismatch(key, detection_model))
    _enforce_complete(report, official, target, strict)
    logger.info("load_swin_checkpoint: %s", report)
    return report


def _enforce_complete(report: LoadReport, official: Mapping[str, Tensor], target: Mapping[str, Tensor],
                      strict: bool) -> None:
    if not (report.missing or report.unexpected):
        return
    problem = "; ".join(
        f"{len(keys)} {what}: {_short(keys, 4)}"
        for what, keys in (("model parameters the checkpoint does not fill", report.missing),
                           ("checkpoint tensors with no place in the model", report.unexpected))
        if keys
    )
    message = (f"incomplete load of a {report.layout} checkpoint ({describe_variant(official)}) into the model "
               f"({describe_variant(target)}): {problem}")
    if strict:
        raise CheckpointError(message + "; build the matching model, or pass strict=False for a deliberate "
                              "partial load")
    logger.warning("load_swin_checkpoint (strict=False): %s", message)
