"""Window helpers: partition/reverse, relative position index, shifted-window mask."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from swin_scratch.layers.window import (
    MASKED_LOGIT,
    batched_layout,
    merge_windows,
    pad_to_geometry,
    partition_windows,
    relative_position_index,
    shifted_window_mask,
    window_geometry,
    window_layout,
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


def test_padding_to_the_window_geometry_pads_bottom_right_with_zeros():
    x = torch.ones(1, 5, 9, 2)
    padded = pad_to_geometry(x, window_geometry(5, 9, 7, shift_size=0))
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
    mask = shifted_window_mask(window_geometry(14, 14, 7, 3))
    assert mask.shape == (4, 49, 49)
    assert mask[0].eq(0).all()  # top-left window: one region, no masking
    last = mask[3]  # bottom-right window: 4 regions after the cyclic shift
    assert (last == MASKED_LOGIT).any()
    # token (0, 0) of that window and token (6, 6) come from different image regions
    assert last[0, 48] == MASKED_LOGIT and last[0, 1] == 0.0
    assert torch.equal(last, last.T)


def test_no_shift_when_the_padded_map_fits_one_window():
    assert window_geometry(7, 7, 7, 3).shift_height == 0
    assert window_geometry(14, 7, 7, 3).shift_height == 3
    geometry = window_geometry(14, 5, 7, 3)  # width pads to 7: one window, not shifted
    assert (geometry.padded_height, geometry.padded_width) == (14, 7)
    assert (geometry.shift_height, geometry.shift_width) == (3, 0) and geometry.is_shifted
    assert not window_geometry(5, 6, 7, 3).is_shifted


def test_mask_of_a_map_shifted_along_one_dimension_only_separates_rows():
    mask = shifted_window_mask(window_geometry(14, 7, 7, 3))  # columns fit one window: no column shift
    assert mask.shape == (2, 49, 49)
    assert mask[0].eq(0).all()
    # bottom window: rows 0-3 and rows 4-6 come from different regions; columns never split
    assert mask[1, 0, 6] == 0.0 and mask[1, 0, 48] == MASKED_LOGIT


def _pad_roll_partition(x: torch.Tensor, geometry) -> torch.Tensor:
    """The textbook route (pad, cyclic shift, window partition), as the oracle for the gather."""
    padded = pad_to_geometry(x, geometry)
    shifted = torch.roll(padded, shifts=(-geometry.shift_height, -geometry.shift_width), dims=(1, 2))
    return window_partition(shifted, geometry.window_size)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(1, 23), width=st.integers(1, 23), shift=st.sampled_from([0, 3]))
def test_window_gather_equals_pad_roll_partition_and_merge_inverts_it(batch, height, width, shift):
    x = torch.randn(batch, height, width, 4)
    layout = window_layout(height, width, 7, shift)
    windows = partition_windows(x, layout)
    assert torch.equal(windows, _pad_roll_partition(x, layout.geometry))
    assert torch.equal(merge_windows(windows, layout, height, width), x)
    textbook = window_layout(height, width, 7, shift, routes=False)  # what torch.compile traces
    assert torch.equal(partition_windows(x, textbook), windows)
    assert torch.equal(merge_windows(windows, textbook, height, width), x)


def test_batched_routes_are_one_images_routes_offset_per_image():
    layout = window_layout(10, 13, 7, 3)
    batched = batched_layout(layout, 3)
    assert batched.images == 3 and batched_layout(batched, 3) is batched and batched_layout(layout, 1) is layout
    map_tokens, slots = 10 * 13, layout.source_tokens.numel()
    for image in range(3):
        assert torch.equal(batched.source_tokens.view(3, -1)[image], layout.source_tokens + image * map_tokens)
        assert torch.equal(batched.padding_slots.view(3, -1)[image], layout.padding_slots + image * slots)
        assert torch.equal(batched.token_slots.view(3, -1)[image], layout.token_slots + image * slots)
    x = torch.randn(3, 10, 13, 4)
    windows = partition_windows(x, batched)
    assert torch.equal(windows, partition_windows(x, layout))  # built on the fly from one image's routes
    assert torch.equal(merge_windows(windows, batched, 10, 13), x)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(1, 23), width=st.integers(1, 23), shift=st.sampled_from([0, 3]))
def test_token_major_windows_are_the_window_major_ones_transposed(batch, height, width, shift):
    x = torch.randn(batch, height, width, 4)
    window_major = partition_windows(x, window_layout(height, width, 7, shift))  # (B, nW, N, C)
    layout = window_layout(height, width, 7, shift, token_major=True)
    windows = partition_windows(x, layout)  # (B, N, nW, C)
    assert torch.equal(windows, window_major.transpose(1, 2))
    assert torch.equal(merge_windows(windows, layout, height, width), x)
    textbook = window_layout(height, width, 7, shift, routes=False, token_major=True)
    assert torch.equal(partition_windows(x, textbook), windows)
    assert torch.equal(merge_windows(windows, textbook, height, width), x)


def test_window_gather_gradients_match_the_textbook_route():
    x = torch.randn(2, 10, 13, 3, requires_grad=True)
    layout = window_layout(10, 13, 7, 3)
    weights = torch.randn(2, 4, 49, 3)
    (partition_windows(x, layout) * weights).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (_pad_roll_partition(x, layout.geometry) * weights).sum().backward()
    assert torch.equal(ours, x.grad)
    x.grad = None
    merged = merge_windows(weights.requires_grad_(), layout, 10, 13)
    (merged * x.detach()).sum().backward()
    expected = _pad_roll_partition(x.detach(), layout.geometry)  # padding slots get no gradient
    assert torch.equal(weights.grad, expected)


def _subnormals_reaching_a_projection(masked_logit: float, monkeypatch) -> int:
    """Subnormal float32 values in the attention outputs of the shifted blocks of a Swin-T backbone on a
    padded input, what their output projections multiply (random weights, zero qkv bias as initialised:
    the zero padding tokens' values are exactly 0, so their outputs are sums of masked weights alone)."""
    import swin_scratch.layers.window as window
    from swin_scratch.models import swin_tiny

    monkeypatch.setattr(window, "MASKED_LOGIT", masked_logit)
    model = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval()
    seen = []

    def recording(attend):
        def attend_and_record(*args, **kwargs):
            seen.append(attend(*args, **kwargs))
            return seen[-1]
        return attend_and_record

    for stage in model.layers:
        stage.blocks[1].attn.attend = recording(stage.blocks[1].attn.attend)
    with torch.no_grad():
        model(torch.rand(1, 3, 200, 264))  # every stage padded and shifted
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((x != 0) & (x.abs() < tiny)).sum()) for x in seen)


def test_the_shifted_window_mask_leaves_no_subnormal_numbers_behind(monkeypatch):
    """-100 (official) gives softmax weights e^-100, subnormal float32s that x86 multiplies many times
    slower; -inf gives exact zeros (docs/swin.md)."""
    assert MASKED_LOGIT == float("-inf")
    assert _subnormals_reaching_a_projection(-100.0, monkeypatch) > 0  # what the official value does
    assert _subnormals_reaching_a_projection(MASKED_LOGIT, monkeypatch) == 0
