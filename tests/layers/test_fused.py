"""The fused Linear (bias, GELU, residual add inside oneDNN's product in eager CPU inference) against the
plain F.linear -> F.gelu -> + sequence, and where it must not run."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from swin_scratch.layers import fused
from swin_scratch.layers.mlp import Mlp

needs_onednn = pytest.mark.skipif(not fused.fused_linear_enabled(), reason="PyTorch without oneDNN's linear op")


def _plain(x, weight, bias, activation=None, residual=None):
    out = F.linear(x, weight, bias)
    out = F.gelu(out) if activation == "gelu" else out
    return out if residual is None else residual + out


def _calls_onednn(fn) -> bool:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return any(event.key.startswith("mkldnn::_linear_pointwise") for event in prof.key_averages())


@needs_onednn
@pytest.mark.parametrize("activation", [None, "gelu"])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_linear_equals_the_plain_sequence_in_fp32(activation, with_residual, with_bias):
    x, weight = torch.randn(2, 37, 48), torch.randn(80, 48) * 0.1
    bias = torch.randn(80) if with_bias else None
    residual = torch.randn(2, 37, 80) if with_residual else None
    with torch.inference_mode():
        assert _calls_onednn(lambda: fused.linear(x, weight, bias, activation, residual))
        ours = fused.linear(x, weight, bias, activation, residual)
    torch.testing.assert_close(ours, _plain(x, weight, bias, activation, residual), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_fused_linear_under_bf16_autocast_computes_in_bf16_and_promotes_an_fp32_residual():
    x, weight, bias = torch.randn(64, 48), torch.randn(80, 48) * 0.1, torch.randn(80)
    residual = torch.randn(64, 80)  # fp32, as the residual stream stays under autocast
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        ours = fused.linear(x, weight, bias, "gelu")
        plain = _plain(x, weight, bias, "gelu")
        ours_residual = fused.linear(x, weight, bias, residual=residual)
        plain_residual = _plain(x, weight, bias, residual=residual)
    assert ours.dtype == plain.dtype == torch.bfloat16
    assert ours_residual.dtype == plain_residual.dtype == torch.float32
    torch.testing.assert_close(ours.float(), plain.float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(ours_residual, plain_residual, rtol=2e-2, atol=2e-2)


@needs_onednn
def test_the_packed_weight_follows_in_place_changes():
    x, weight = torch.randn(16, 8), torch.randn(4, 8)
    with torch.inference_mode():
        before = fused.linear(x, weight)
    weight.mul_(2.0)  # e.g. load_state_dict copies in place
    with torch.inference_mode():
        after = fused.linear(x, weight)
    torch.testing.assert_close(after, 2 * before)


def test_autograd_tracing_and_the_switch_take_the_plain_sequence():
    x, weight, bias = torch.randn(8, 6, requires_grad=True), torch.randn(5, 6, requires_grad=True), torch.randn(5)
    assert not _calls_onednn(lambda: fused.linear(x, weight, bias, "gelu"))  # autograd on: needs a backward
    out = fused.linear(x, weight, bias, "gelu")
    assert out.grad_fn is not None
    constant = weight.detach()
    traced = torch.jit.trace(lambda t: fused.linear(t, constant, bias), (x.detach(),))
    assert "mkldnn" not in str(traced.graph)
    previous = fused.set_fused_linear(False)
    try:
        with torch.inference_mode():
            assert not _calls_onednn(lambda: fused.linear(x, weight, bias))
    finally:
        fused.set_fused_linear(previous)


def test_unknown_activations_are_refused():
    with pytest.raises(ValueError, match="activation"):
        fused.linear(torch.randn(2, 3), torch.randn(4, 3), activation="relu")


@pytest.mark.parametrize("drop", [0.0, 0.1])
def test_mlp_with_a_residual_equals_residual_plus_mlp_in_inference_and_training(drop):
    mlp = Mlp(16, 64, drop=drop)
    x, residual = torch.randn(3, 7, 16), torch.randn(3, 7, 16)
    for training in (False, True):
        mlp.train(training)
        torch.manual_seed(0)
        with torch.no_grad():
            ours = mlp(x, residual=residual)
        torch.manual_seed(0)
        with torch.no_grad():
            plain = residual + mlp.drop(mlp.fc2(mlp.drop(nn.functional.gelu(mlp.fc1(x)))))
        torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)
