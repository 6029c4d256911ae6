"""Text Transformer layers and stacks equal torch.nn's with mapped weights; BERT sizes are exact."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from swin_scratch.text.bert import bert_base, bert_large, bert_parameter_breakdown
from swin_scratch.text.transformer import (
    SinusoidalPositionalEncoding,
    Transformer,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)

D, HEADS, FF = 16, 4, 32


def _copy_attention(ours, theirs):
    ours.qkv.weight.copy_(theirs.in_proj_weight)
    ours.qkv.bias.copy_(theirs.in_proj_bias)
    ours.proj.weight.copy_(theirs.out_proj.weight)
    ours.proj.bias.copy_(theirs.out_proj.bias)


@torch.no_grad()
def _copy_layer(ours, theirs):
    _copy_attention(ours.self_attn, theirs.self_attn)
    if hasattr(theirs, "multihead_attn"):
        _copy_attention(ours.cross_attn, theirs.multihead_attn)
    ours.ffn.fc1.load_state_dict(theirs.linear1.state_dict())
    ours.ffn.fc2.load_state_dict(theirs.linear2.state_dict())
    for name in ("norm1", "norm2", "norm3"):
        if hasattr(theirs, name):
            getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())


def _randomize_norms(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)


PADDING = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_equals_torch(norm_first, activation):
    theirs = nn.TransformerEncoderLayer(D, HEADS, FF, 0.0, activation, batch_first=True, norm_first=norm_first).eval()
    _randomize_norms(theirs)
    ours = TransformerEncoderLayer(D, HEADS, FF, 0.0, activation, norm_first).eval()
    _copy_layer(ours, theirs)
    x = torch.randn(2, 7, D)
    torch.testing.assert_close(ours(x, PADDING)[0], theirs(x, src_key_padding_mask=PADDING)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_equals_torch_with_causal_and_padding_masks(norm_first):
    theirs = nn.TransformerDecoderLayer(D, HEADS, FF, 0.0, batch_first=True, norm_first=norm_first).eval()
    _randomize_norms(theirs)
    ours = TransformerDecoderLayer(D, HEADS, FF, 0.0, "relu", norm_first).eval()
    _copy_layer(ours, theirs)
    tgt, memory = torch.randn(2, 5, D), torch.randn(2, 7, D)
    tgt_padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    expected = theirs(tgt, memory, tgt_mask=nn.Transformer.generate_square_subsequent_mask(5), tgt_is_causal=True,
                      tgt_key_padding_mask=tgt_padding, memory_key_padding_mask=PADDING)
    actual = ours(tgt, memory, tgt_padding, PADDING, causal=True)
    valid = ~tgt_padding
    torch.testing.assert_close(actual[valid], expected[valid], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stack_equals_torch_transformer(norm_first):
    theirs = nn.Transformer(D, HEADS, 2, 2, FF, 0.0, batch_first=True, norm_first=norm_first).eval()
    _randomize_norms(theirs)
    ours = Transformer(10, 10, D, HEADS, 2, 2, FF, 0.0, norm_first=norm_first).eval()
    with torch.no_grad():
        for a, b in zip(ours.encoder.layers, theirs.encoder.layers):
            _copy_layer(a, b)
        for a, b in zip(ours.decoder.layers, theirs.decoder.layers):
            _copy_layer(a, b)
        ours.encoder.norm.load_state_dict(theirs.encoder.norm.state_dict())
        ours.decoder.norm.load_state_dict(theirs.decoder.norm.state_dict())
    src, tgt = torch.randn(2, 7, D), torch.randn(2, 5, D)
    expected = theirs(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(5), tgt_is_causal=True,
                      src_key_padding_mask=PADDING, memory_key_padding_mask=PADDING)
    memory = ours.encoder(src, PADDING)
    actual = ours.decoder(tgt, memory, None, PADDING, causal=True)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_incremental_decoding_with_cache_equals_full_decoding():
    model = Transformer(12, 12, D, HEADS, 1, 2, FF, 0.0).eval()
    src, tgt = torch.randint(1, 12, (2, 6)), torch.randint(1, 12, (2, 5))
    memory, padding = model.encode(src)
    full = model.decode(tgt, memory, padding)
    caches = [{} for _ in model.decoder.layers]
    steps = [model.decode(tgt[:, t : t + 1], memory, padding, caches=caches, offset=t) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_output_projection_is_tied_to_the_target_embedding():
    model = Transformer(12, 12, D, HEADS, 1, 1, FF)
    assert model.output.weight is model.tgt_embed.weight


def test_sinusoidal_encoding_adds_order_information():
    encoding = SinusoidalPositionalEncoding(8, max_len=10)
    out = encoding(torch.zeros(1, 3, 8))
    assert torch.equal(out[0, 0, 0::2], torch.zeros(4)) and torch.equal(out[0, 0, 1::2], torch.ones(4))
    torch.testing.assert_close(out[0, 1, 0], torch.sin(torch.tensor(1.0)))
    assert not torch.equal(out[0, 1], out[0, 2])


@pytest.mark.parametrize("factory,expected", [(bert_base, 109_482_240), (bert_large, 335_141_888)])
def test_bert_sizes_are_exact(factory, expected):
    with torch.device("meta"):
        model = factory()
    breakdown = bert_parameter_breakdown(model)
    assert breakdown["total"] == expected == sum(p.numel() for p in model.parameters())


def test_bert_forward_returns_sequence_and_pooled_output():
    model = bert_base(vocab_size=50, embed_dim=16, num_layers=2, num_heads=2, dim_feedforward=32).eval()
    ids = torch.randint(0, 50, (2, 9))
    sequence, pooled = model(ids, torch.zeros_like(ids), ids == 0)
    assert sequence.shape == (2, 9, 16) and pooled.shape == (2, 16) and pooled.abs().max() <= 1
