"""Window helpers for Swin: the window geometry (padding, shift), partition / reverse, the relative
position index, the shifted-window mask.

Each concept lives here once; the model only calls these. Tensors are channels-last:
feature maps are (B, H, W, C) and windows are (B, nW, N, C) with N = window_size².
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

# Attention logit added between tokens of different regions in a shifted window (official value).
MASKED_LOGIT = -100.0


class WindowGeometry(NamedTuple):
    """How an H x W map is cut into M x M windows: its padded size and the cyclic shift per dimension.

    ``shift_height``/``shift_width`` are 0 along a dimension whose padded size fits in one window:
    there is nothing to connect across windows. That matches official Swin classification and
    torchvision; the official detection backbone still shifts and masks there (README "Design choices").
    """

    window_size: int
    padded_height: int
    padded_width: int
    shift_height: int
    shift_width: int

    @property
    def is_shifted(self) -> bool:
        return bool(self.shift_height or self.shift_width)


def window_geometry(height: int, width: int, window_size: int, shift_size: int) -> WindowGeometry:
    """The one place that computes padded sizes and effective shifts (ints, or SymInts under dynamo).

    ``(n + M - 1) // M``, not ``-(-n // M)``: ONNX integer division truncates instead of flooring.
    """
    padded_height = (height + window_size - 1) // window_size * window_size
    padded_width = (width + window_size - 1) // window_size * window_size
    shift_height = 0 if padded_height <= window_size else shift_size
    shift_width = 0 if padded_width <= window_size else shift_size
    return WindowGeometry(window_size, padded_height, padded_width, shift_height, shift_width)


def pad_to_geometry(x: Tensor, geometry: WindowGeometry) -> Tensor:
    """Zero-pad (B, H, W, C) at the bottom/right to (B, padded_height, padded_width, C)."""
    pad_h = geometry.padded_height - x.shape[1]
    pad_w = geometry.padded_width - x.shape[2]
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h))


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B, nW, N, C), windows in row-major order; H, W multiples of window_size."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window_size, window_size, width // window_size, window_size, channels)
    x = x.permute(0, 1, 3, 2, 4, 5)  # (B, nH, nW, M, M, C)
    return x.reshape(batch, -1, window_size * window_size, channels)


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """(B, nW, N, C) -> (B, H, W, C); the inverse of :func:`window_partition`."""
    batch, channels = windows.shape[0], windows.shape[-1]
    x = windows.view(batch, height // window_size, width // window_size, window_size, window_size, channels)
    x = x.permute(0, 1, 3, 2, 4, 5)  # (B, nH, M, nW, M, C)
    return x.reshape(batch, height, width, channels)


def relative_position_index(window_size: int) -> Tensor:
    """(N, N) index into the (2M-1)² bias table for every (query, key) pair of a window.

    The offset (dy, dx) between two tokens lies in [-(M-1), M-1]²; shifted to [0, 2M-2]² it is
    flattened row-major as dy * (2M-1) + dx.
    """
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)  # (2, N)
    offsets = coords[:, :, None] - coords[:, None, :] + (window_size - 1)  # (2, N, N)
    return offsets[0] * (2 * window_size - 1) + offsets[1]


def shifted_window_mask(geometry: WindowGeometry, device: torch.device | None = None) -> Tensor:
    """(nW, N, N) additive mask: 0 within a region, MASKED_LOGIT across regions.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to 3 x 3
    regions that were not neighbours in the image; tokens may only attend within their region.
    Region ids come from tensor ops (no Python slicing loop), so tracing and dynamic shapes work.
    """
    window_size = geometry.window_size
    region_rows = _regions_along(geometry.padded_height, window_size, geometry.shift_height, device)  # (Hp,)
    region_cols = _regions_along(geometry.padded_width, window_size, geometry.shift_width, device)  # (Wp,)
    regions = (region_rows[:, None] * 3 + region_cols[None, :]).float()  # (Hp, Wp)
    region_windows = window_partition(regions[None, :, :, None], window_size)[0, :, :, 0]  # (nW, N)
    different = region_windows[:, :, None] != region_windows[:, None, :]  # (nW, N, N)
    return torch.zeros(different.shape, device=device).masked_fill(different, MASKED_LOGIT)


def _regions_along(padded_size: int, window_size: int, shift: int, device: torch.device | None) -> Tensor:
    """Region id of each row (or column): 0 untouched, 1 last window before the wrap, 2 wrapped strip."""
    positions = torch.arange(padded_size, device=device)
    if shift == 0:
        return torch.zeros_like(positions)
    return (positions >= padded_size - window_size).long() + (positions >= padded_size - shift).long()
