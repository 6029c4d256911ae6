"""Window helpers for Swin: the window geometry (padding, shift), the token routes between a map and
its windows, partition / reverse, the relative position index, the shifted-window mask.

Each concept lives here once; the model only calls these. Tensors are channels-last:
feature maps are (B, H, W, C) and windows are (B, nW, N, C) with N = window_size² (window-major), or
(B, N, nW, C) for a token-major layout (token i of every window side by side, see :class:`WindowLayout`).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

# Attention logit added between tokens of different regions in a shifted window. Official Swin adds
# -100: its softmax weight e^-100 ~ 3.7e-44 is a subnormal float32, and x86 cores multiply subnormals
# many times slower (a Linear fed by such attention outputs ran 7x slower on a Xeon,
# docs/benchmarks/intel-xeon-avx512-2core.md).
# -inf gives exact zeros; the weights differ from the official ones by < 1e-38 (no fp32 difference).
# A row is never all -inf: every token shares a region with itself.
MASKED_LOGIT = float("-inf")


class WindowGeometry(NamedTuple):
    """How an H x W map is cut into M x M windows: its padded size and the cyclic shift per dimension.

    ``shift_height``/``shift_width`` are 0 along a dimension whose padded size fits in one window:
    there is nothing to connect across windows. That matches official Swin classification and
    torchvision; the official detection backbone still shifts and masks there (docs/swin.md, "a stage
    that fits one window is not shifted").
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


class WindowLayout(NamedTuple):
    """Where every token of an H x W map goes in its (padded, cyclically shifted) windows, and back.

    Padding, the cyclic shift and the window order together are one reordering of tokens, so cutting
    a map into windows is a single row gather (instead of pad, roll and a permuting copy, each of which
    writes the whole map), and putting windows back is another (which also drops the padding).
    Window slots are numbered window by window, row-major inside a window: slot = w * N + i; or, in a
    ``token_major`` layout, token by token: slot = i * nW + w, windows (B, N, nW, C). Token-major
    windows let attention fold the windows into the heads, (B, nW * heads, N, d), so that a bias that
    differs per window (the shifted-window mask) broadcasts over the batch instead of being copied
    per image (``models/swin.py``, ``split_qkv``).
    Without routes (None), partition and reverse take the textbook steps instead: torch.compile's
    inductor fuses those into one kernel itself (and its CUDA backend in torch 2.11 cannot bound
    gather indices computed with ``%``).

    The routes are rows of the flattened tensors of ``images`` images stored back to back: the map
    (images * H * W, C) and the windows (images * nW * N, C). :func:`window_layout` builds them for
    one image; :func:`batched_layout` extends them to a batch (a stage caches that per batch size).
    """

    geometry: WindowGeometry
    source_tokens: Optional[Tensor] = None  # (images * nW * N,) map row copied into each slot; 0 for padding
    padding_slots: Optional[Tensor] = None  # (images * P,) window slots that hold zero padding
    token_slots: Optional[Tensor] = None  # (images * H * W,) window slot of each map row
    images: int = 1  # how many images the routes cover
    token_major: bool = False  # windows (B, N, nW, C) instead of (B, nW, N, C)


def window_layout(
    height: int, width: int, window_size: int, shift_size: int, device: torch.device | None = None, routes: bool = True,
    token_major: bool = False,
) -> WindowLayout:
    """The routes for one map size; tensor ops only (no Python loops), so tracing and dynamo follow them."""
    geometry = window_geometry(height, width, window_size, shift_size)
    if not routes:
        return WindowLayout(geometry, token_major=token_major)
    padded_height, padded_width = geometry.padded_height, geometry.padded_width

    def slots(rows: Tensor, cols: Tensor) -> Tensor:  # window slots of padded positions rows x cols
        return _window_slots(rows, cols, geometry, token_major).reshape(-1)

    def span(start, stop) -> Tensor:
        return torch.arange(start, stop, device=device)

    token_slots = slots(span(0, height), span(0, width))
    # padding: the rows below the map (all columns), then the columns right of it (map rows only)
    padding_slots = torch.cat([slots(span(height, padded_height), span(0, padded_width)),
                               slots(span(0, height), span(width, padded_width))])
    # the forward route is the inverse one turned around; padding slots read token 0 (zeroed later)
    source_tokens = torch.zeros(padded_height * padded_width, dtype=torch.long, device=device)
    source_tokens = source_tokens.scatter(0, token_slots, span(0, height * width))
    return WindowLayout(geometry, source_tokens, padding_slots, token_slots, token_major=token_major)


def batched_layout(layout: WindowLayout, batch: int) -> WindowLayout:
    """The routes of one image extended to ``batch`` images stored back to back (image b's rows are
    offset by b * H * W in the map and b * nW * N in the windows); ``layout`` itself when it already
    covers ``batch`` images or has no routes. A trace always extends one image's routes, so that the
    batch stays a traced size (ONNX exports with a dynamic batch)."""
    if layout.source_tokens is None or (not torch.jit.is_tracing() and layout.images == batch):
        return layout
    if layout.images != 1:
        raise ValueError(f"routes of {layout.images} images cannot serve a batch of {batch}")
    slots, map_tokens = layout.source_tokens.numel(), layout.token_slots.numel()
    return WindowLayout(
        layout.geometry,
        _per_image(layout.source_tokens, batch, map_tokens),
        _per_image(layout.padding_slots, batch, slots),
        _per_image(layout.token_slots, batch, slots),
        batch,
        layout.token_major,
    )


def partition_windows(x: Tensor, layout: WindowLayout) -> Tensor:
    """(B, H, W, C) -> (B, nW, N, C), or (B, N, nW, C) for a token-major layout: zero-padded, cyclically
    shifted windows, written once."""
    geometry = layout.geometry
    if layout.source_tokens is None:
        shifted = torch.roll(pad_to_geometry(x, geometry), (-geometry.shift_height, -geometry.shift_width), (1, 2))
        windows = window_partition(shifted, geometry.window_size)
        # contiguous: a Linear on the transposed view would run as a batched matmul (inductor fuses the copy)
        return windows.transpose(1, 2).contiguous() if layout.token_major else windows
    batch, height, width, channels = x.shape
    layout = batched_layout(layout, batch)
    windows = x.reshape(batch * height * width, channels).index_select(0, layout.source_tokens)  # (B * nW * N, C)
    windows = windows.index_fill_(0, layout.padding_slots, 0.0)
    tokens = geometry.window_size * geometry.window_size
    if layout.token_major:
        return windows.view(batch, tokens, -1, channels)
    return windows.view(batch, -1, tokens, channels)


def merge_windows(windows: Tensor, layout: WindowLayout, height: int, width: int) -> Tensor:
    """(B, nW, N, C), or (B, N, nW, C) for a token-major layout, -> (B, H, W, C): the inverse of
    :func:`partition_windows`; padding is dropped."""
    geometry = layout.geometry
    if layout.token_slots is None:
        windows = windows.transpose(1, 2) if layout.token_major else windows
        padded = window_reverse(windows, geometry.window_size, geometry.padded_height, geometry.padded_width)
        return torch.roll(padded, (geometry.shift_height, geometry.shift_width), (1, 2))[:, :height, :width]
    batch, channels = windows.shape[0], windows.shape[-1]
    layout = batched_layout(layout, batch)
    flat = windows.reshape(-1, channels)  # (B * nW * N, C)
    return flat.index_select(0, layout.token_slots).view(batch, height, width, channels)


def _window_slots(rows: Tensor, cols: Tensor, geometry: WindowGeometry, token_major: bool = False) -> Tensor:
    """(len(rows), len(cols)) window slots of padded positions: each moves by (-s) mod the padded size."""
    window_size = geometry.window_size
    shifted_rows = (rows - geometry.shift_height) % geometry.padded_height
    shifted_cols = (cols - geometry.shift_width) % geometry.padded_width
    windows_per_row = geometry.padded_width // window_size
    window = (shifted_rows[:, None] // window_size) * windows_per_row + shifted_cols[None, :] // window_size
    within = (shifted_rows[:, None] % window_size) * window_size + shifted_cols[None, :] % window_size
    if token_major:
        return within * (geometry.padded_height // window_size * windows_per_row) + window
    return window * (window_size * window_size) + within


def _per_image(index: Tensor, batch: int, stride: int) -> Tensor:
    """Row indices of one image -> those of every image of a batch stored back to back."""
    offsets = torch.arange(batch, device=index.device)[:, None] * stride  # (B, 1)
    return (index[None, :] + offsets).reshape(-1)


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
