"""The shared attention kernel and MultiHeadAttention against torch's own implementations, on each
device of ``DEVICES`` (tests/conftest.py; on CUDA the fused path runs torch's GPU attention kernels)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from swin_scratch.layers import MultiHeadAttention, scaled_dot_product_attention


def _qkv(batch=2, heads=3, query_len=5, key_len=7, dim=8, device="cpu"):
    q, k, v = (torch.randn(batch, heads, query_len, dim), torch.randn(batch, heads, key_len, dim),
               torch.randn(batch, heads, key_len, dim))
    return q.to(device), k.to(device), v.to(device)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("with_padding", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_fused_path_equals_the_explicit_math(with_bias, with_padding, causal, device):
    q, k, v = _qkv(query_len=7, device=device)
    bias = torch.randn(1, 3, 7, 7).to(device) if with_bias else None
    padding = torch.tensor([[False] * 5 + [True] * 2, [False] * 7], device=device) if with_padding else None
    fused = scaled_dot_product_attention(q, k, v, bias, padding, causal, use_fused=True)
    math = scaled_dot_product_attention(q, k, v, bias, padding, causal, use_fused=False)
    torch.testing.assert_close(fused, math, atol=1e-5, rtol=1e-5)


def test_math_path_is_softmax_of_scaled_scores_plus_bias_times_values():
    q, k, v = _qkv()
    bias = torch.randn(2, 3, 5, 7)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5 + bias, dim=-1) @ v
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, bias, use_fused=False), expected)


@pytest.mark.parametrize("use_fused", [True, False])
def test_query_whose_keys_are_all_masked_returns_zeros_not_nan(use_fused, device):
    q, k, v = _qkv(batch=2, device=device)
    padding = torch.zeros(2, 7, dtype=torch.bool, device=device)
    padding[1] = True  # every key of sequence 1 is padding
    out = scaled_dot_product_attention(q, k, v, key_padding_mask=padding, use_fused=use_fused)
    assert not torch.isnan(out).any()
    assert out[1].abs().max() == 0
    assert out[0].abs().max() > 0


def test_batched_window_shape_with_broadcast_bias_works_like_swin_calls_it(device):
    q, k, v = (torch.randn(2, 4, 3, 49, 8).to(device) for _ in range(3))  # (B, nW, heads, N, d)
    bias = torch.randn(4, 3, 49, 49).to(device)
    out = scaled_dot_product_attention(q, k, v, attn_bias=bias)
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, attn_bias=bias, use_fused=False),
                               atol=1e-5, rtol=1e-5)


def _paired(embed_dim=16, num_heads=4, device="cpu"):
    ours = MultiHeadAttention(embed_dim, num_heads)
    reference = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
    with torch.no_grad():
        ours.qkv.weight.copy_(reference.in_proj_weight)
        ours.qkv.bias.copy_(reference.in_proj_bias)
        ours.proj.weight.copy_(reference.out_proj.weight)
        ours.proj.bias.copy_(reference.out_proj.bias)
    return ours.eval().to(device), reference.eval().to(device)


def test_self_attention_equals_torch_multihead_attention_with_padding_and_causal_masks(device):
    ours, reference = _paired(device=device)
    x = torch.randn(2, 6, 16).to(device)
    padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2], device=device)
    causal = nn.Transformer.generate_square_subsequent_mask(6, device=device)
    expected, _ = reference(x, x, x, key_padding_mask=padding, attn_mask=causal, need_weights=False)
    actual = ours(x, key_padding_mask=padding, causal=True)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    expected_plain, _ = reference(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected_plain, atol=1e-5, rtol=1e-5)


def test_cross_attention_equals_torch_multihead_attention(device):
    ours, reference = _paired(device=device)
    queries, memory = torch.randn(2, 3, 16).to(device), torch.randn(2, 9, 16).to(device)
    padding = torch.tensor([[False] * 9, [False] * 5 + [True] * 4], device=device)
    expected, _ = reference(queries, memory, memory, key_padding_mask=padding, need_weights=False)
    torch.testing.assert_close(ours(queries, memory, key_padding_mask=padding), expected, atol=1e-5, rtol=1e-5)


def test_embed_dim_not_divisible_by_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="head_dim \\* num_heads"):
        MultiHeadAttention(10, 3)


def test_incremental_self_attention_with_cache_equals_full_causal_attention(device):
    ours, _ = _paired(device=device)
    x = torch.randn(1, 5, 16).to(device)
    full = ours(x, causal=True)
    cache: dict = {}
    steps = [ours(x[:, t : t + 1], causal=True, cache=cache) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
