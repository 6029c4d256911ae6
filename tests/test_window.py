"""Window helpers: partition/reverse, relative position index, shifted-window mask."""
from __future__ import annotations

import torch

from swin_scratch.layers.window import (
    MASKED_LOGIT,
    effective_shift,
    pad_to_window_multiple,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


def test_window_reverse_inverts_partition():
    x = torch.randn(2, 14, 21, 5)
    windows = window_partition(x, 7)
    assert windows.shape == (2, 6, 49, 5)
    assert torch.equal(window_reverse(windows, 7, 14, 21), x)


def test_partition_puts_each_window_contiguously():
    x = torch.arange(4 * 4).float().view(1, 4, 4, 1)
    windows = window_partition(x, 2)[0, :, :, 0]
    assert windows[0].tolist() == [0, 1, 4, 5] and windows[1].tolist() == [2, 3, 6, 7]


def test_pad_to_window_multiple_pads_bottom_right_with_zeros():
    x = torch.ones(1, 5, 9, 2)
    padded = pad_to_window_multiple(x, 7)
    assert padded.shape == (1, 7, 14, 2)
    assert padded[:, :5, :9].eq(1).all() and padded[:, 5:].eq(0).all() and padded[:, :, 9:].eq(0).all()


def test_relative_position_index_encodes_offsets():
    window = 3
    index = relative_position_index(window)
    assert index.shape == (9, 9)
    assert index.min() == 0 and index.max() == (2 * window - 1) ** 2 - 1
    # the same offset between two token pairs maps to the same table entry
    assert index[0, 4] == index[4, 8]  # both are offset (-1, -1)
    assert len(set(index.diagonal().tolist())) == 1  # zero offset everywhere on the diagonal
    assert index[0, 8] != index[8, 0]


def test_shifted_window_mask_blocks_cross_region_attention():
    mask = shifted_window_mask(14, 14, 7, 3, 3)
    assert mask.shape == (4, 49, 49)
    assert mask[0].eq(0).all()  # top-left window: one region, no masking
    last = mask[3]  # bottom-right window: 4 regions after the cyclic shift
    assert (last == MASKED_LOGIT).any()
    # token (0, 0) of that window and token (6, 6) come from different image regions
    assert last[0, 48] == MASKED_LOGIT and last[0, 1] == 0.0
    assert torch.equal(last, last.T)


def test_no_shift_when_the_padded_map_fits_one_window():
    assert effective_shift(7, 7, 3) == 0
    assert effective_shift(14, 7, 3) == 3
