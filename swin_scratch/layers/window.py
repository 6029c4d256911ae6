"""Window helpers for Swin: partition / reverse, the relative position index, the shifted-window mask.

Each concept lives here once; the model only calls these. Tensors are channels-last:
feature maps are (B, H, W, C) and windows are (B, nW, N, C) with N = window_size².
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Attention logit added between tokens of different regions in a shifted window (official value).
MASKED_LOGIT = -100.0


def pad_to_window_multiple(x: Tensor, window_size: int) -> Tensor:
    """Zero-pad (B, H, W, C) at the bottom/right so H and W are multiples of window_size."""
    height, width = x.shape[1], x.shape[2]
    pad_h = (window_size - height % window_size) % window_size
    pad_w = (window_size - width % window_size) % window_size
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


def effective_shift(padded_size: int, window_size: int, shift_size: int) -> int:
    """No shift along a dimension that fits in one window: there is nothing to connect across windows.

    Matches official Swin classification and torchvision; the official detection backbone still
    shifts and masks there (see README "Design choices").
    """
    return 0 if padded_size <= window_size else shift_size


def shifted_window_mask(
    padded_height: int,
    padded_width: int,
    window_size: int,
    shift_height: int,
    shift_width: int,
    device: torch.device | None = None,
) -> Tensor:
    """(nW, N, N) additive mask: 0 within a region, MASKED_LOGIT across regions.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to 3 x 3
    regions that were not neighbours in the image; tokens may only attend within their region.
    Region ids are computed with tensor ops (no Python slicing loop).
    """
    rows = torch.arange(padded_height, device=device)
    cols = torch.arange(padded_width, device=device)
    # 0 = untouched, 1 = last window before the wrap, 2 = wrapped-around strip
    region_rows = (rows >= padded_height - window_size).long() + (rows >= padded_height - shift_height).long()
    region_cols = (cols >= padded_width - window_size).long() + (cols >= padded_width - shift_width).long()
    if shift_height == 0:
        region_rows = torch.zeros_like(region_rows)
    if shift_width == 0:
        region_cols = torch.zeros_like(region_cols)
    regions = (region_rows[:, None] * 3 + region_cols[None, :]).float()  # (Hp, Wp)
    region_windows = window_partition(regions[None, :, :, None], window_size)[0, :, :, 0]  # (nW, N)
    different = region_windows[:, :, None] != region_windows[:, None, :]  # (nW, N, N)
    return torch.zeros(different.shape, device=device).masked_fill(different, MASKED_LOGIT)
