"""SwinTransformer: sizes, official layout, detection mode, caching, freezing, checkpointing, FLOPs.

Tests taking ``device`` run on each device of ``DEVICES`` (tests/conftest.py)."""
from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.flops import count_flops
from swin_scratch.models import SwinTransformer, swin_base, swin_large, swin_small, swin_tiny
from swin_scratch.models.swin import BasicLayer

TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), drop_path_rate=0.0)


def tiny_backbone(version: int = 1, **overrides) -> SwinTransformer:
    """A small detection-mode Swin (V1, or V2 with window 7), all four stages out."""
    from swin_scratch.models.swin_v2 import SwinTransformerV2

    model_class, window = (SwinTransformer, {}) if version == 1 else (SwinTransformerV2, {"window_size": 7})
    return model_class(**{**TINY, **window, "num_classes": 0, "out_indices": (0, 1, 2, 3), **overrides})


@pytest.mark.parametrize(
    "factory,expected",
    [(swin_tiny, 28_288_354), (swin_small, 49_606_258), (swin_base, 87_768_224), (swin_large, 196_532_476)],
)
def test_parameter_count_equals_the_paper(factory, expected):
    with torch.device("meta"):
        model = factory()
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.slow
@pytest.mark.parametrize("factory,paper_gflops", [(swin_tiny, 4.5), (swin_small, 8.7), (swin_base, 15.4)])
def test_flops_match_the_paper_within_3_percent(factory, paper_gflops):
    gflops = count_flops(factory().eval(), (torch.rand(1, 3, 224, 224),)) / 1e9
    assert gflops == pytest.approx(paper_gflops, rel=0.03)


def test_flop_count_includes_the_attention_matmuls():
    from helpers.flops import flop_analysis

    model = SwinTransformer(**TINY, num_classes=10).eval()
    by_operator = flop_analysis(model, (torch.rand(1, 3, 64, 64),)).by_operator()
    attention = sum(by_operator.get(op, 0) for op in ("matmul", "bmm", "scaled_dot_product_attention"))
    # Q Kᵀ and attn V of every block: per stage, blocks x windows x heads x N x N x (2 x head_dim)
    expected = 0
    side = 16
    for stage, (depth, heads) in enumerate(zip(TINY["depths"], TINY["num_heads"])):
        padded = -(-side // 7) * 7
        windows = (padded // 7) ** 2
        head_dim = TINY["embed_dim"] * 2**stage // heads
        expected += depth * windows * heads * 49 * 49 * 2 * head_dim
        side = -(-side // 2)
    assert attention == expected


def test_state_dict_keys_follow_the_official_layout():
    keys = set(swin_tiny().state_dict())
    assert {"patch_embed.proj.weight", "patch_embed.norm.weight", "norm.weight", "head.weight", "head.bias"} <= keys
    block = "layers.2.blocks.5."
    for name in ("norm1.weight", "attn.relative_position_bias_table", "attn.qkv.weight", "attn.qkv.bias",
                 "attn.proj.weight", "norm2.weight", "mlp.fc1.weight", "mlp.fc2.weight"):
        assert block + name in keys
    for stage in range(3):
        assert f"layers.{stage}.downsample.reduction.weight" in keys
        assert f"layers.{stage}.downsample.reduction.bias" not in keys
    assert not any(k.startswith("layers.3.downsample") for k in keys)
    pattern = re.compile(
        r"^(patch_embed\.(proj|norm)"
        r"|layers\.\d\.(blocks\.\d+\.(norm[12]|attn\.(qkv|proj|relative_position_bias_table)|mlp\.fc[12])"
        r"|downsample\.(reduction|norm))"
        r"|norm|head)(\.(weight|bias))?$"
    )
    assert all(pattern.match(k) for k in keys), [k for k in keys if not pattern.match(k)]


def test_classification_returns_logits():
    model = SwinTransformer(**TINY, num_classes=7).eval()
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 7)


def test_detection_mode_has_per_stage_norms_and_no_head():
    keys = set(swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).state_dict())
    assert {f"norm{i}.weight" for i in range(4)} <= keys
    assert not any(k.startswith(("head.", "norm.")) for k in keys)


@pytest.mark.parametrize("height,width", [(64, 64), (100, 75), (33, 130), (7, 9)])
def test_detection_outputs_follow_the_stride_rules_for_any_size(height, width, device):
    model = tiny_backbone().eval().to(device)
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, height, width).to(device))
    for i, out in enumerate(outputs):
        stride = 4 * 2**i
        assert out.shape == (1, 16 * 2**i, -(-height // stride), -(-width // stride))


def test_patch_embedding_pads_instead_of_dropping_pixels():
    model = tiny_backbone(out_indices=(0,)).eval()
    image = torch.zeros(1, 3, 66, 66)
    with torch.no_grad():
        before = model(image)[0]
        image[..., 65, 65] = 10.0  # a pixel a truncating patch embedding would never see
        after = model(image)[0]
    assert before.shape[-2:] == (17, 17)
    assert not torch.allclose(before[..., 16, 16], after[..., 16, 16])


def test_window_plan_is_built_once_per_map_size_whatever_the_batch():
    model = tiny_backbone().eval()
    stage = model.layers[0]
    with torch.no_grad():
        model(torch.rand(1, 3, 120, 120))  # stage 0 map 30 x 30
        first = stage._plan_cache[(30, 30, "cpu")]
        model(torch.rand(2, 3, 120, 120))
    assert stage._plan_cache[(30, 30, "cpu")] is first
    assert len(stage._plan_cache) == 1
    regular, shifted, mask = first
    assert mask is not None and mask.shape == (25, 49, 49)  # padded to 35 x 35: 5 x 5 windows
    assert shifted.geometry.is_shifted and not regular.geometry.is_shifted


def test_batch_routes_are_cached_per_batch_size_and_equal_freshly_built_ones():
    from swin_scratch.layers.window import batched_layout

    model = tiny_backbone().eval()
    stage = model.layers[0]
    images = torch.rand(3, 3, 120, 120)
    with torch.no_grad():
        batched = [output.clone() for output in model(images)]
        cached = stage._batched_plan_cache[(30, 30, "cpu", 3)]
        model(images)
        assert stage._batched_plan_cache[(30, 30, "cpu", 3)] is cached  # not rebuilt by the second forward
        alone = [torch.cat(outputs) for outputs in zip(*(model(image[None]) for image in images))]
    single = stage._plan_cache[(30, 30, "cpu")]
    for name in ("regular", "shifted"):
        fresh = batched_layout(getattr(single, name), 3)
        for routes in ("source_tokens", "padding_slots", "token_slots"):
            assert torch.equal(getattr(getattr(cached, name), routes), getattr(fresh, routes))
    assert cached.mask is single.mask
    for ours, reference in zip(batched, alone):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_a_model_run_under_inference_mode_trains_next_at_the_same_size(version, batch):
    # the window routes cached by the inference_mode forward are index_select indices, which backward keeps
    model = tiny_backbone(version).eval()
    images = torch.rand(batch, 3, 120, 120)
    with torch.inference_mode():
        model(images)
    model.train()
    sum(output.sum() for output in model(images)).backward()
    assert all(parameter.grad is not None for parameter in model.layers[0].parameters())


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("grad", [False, True])
def test_windows_folded_into_heads_give_the_per_image_expanded_bias_attention(version, grad):
    """Shifted blocks run token-major windows, (B, nW * heads, N, d), so the per-window bias broadcasts
    over the batch; the old math (windows in the batch, the bias copied for every image) is the oracle."""
    from swin_scratch.layers.window import shifted_window_mask, window_geometry
    from swin_scratch.models.swin import WindowAttention
    from swin_scratch.models.swin_v2 import WindowAttentionV2

    attention = (WindowAttention if version == 1 else WindowAttentionV2)(dim=12, window_size=7, num_heads=3).eval()
    for param in attention.parameters():
        param.data.add_(torch.randn_like(param) * 0.1)
    mask = shifted_window_mask(window_geometry(14, 21, 7, 3))  # (6, 49, 49)
    bias = attention.relative_position_bias()[None] + mask[:, None]  # (nW, heads, N, N)
    windows = torch.randn(3, 6, 49, 12, requires_grad=grad)  # (B, nW, N, C)
    with torch.set_grad_enabled(grad):
        expected = attention(windows, bias, token_major=False)  # bias expanded to (B * nW, heads, N, N)
        folded = attention(windows.transpose(1, 2), bias, token_major=True)  # (B, N, nW, C)
    torch.testing.assert_close(folded, expected.transpose(1, 2), rtol=1e-5, atol=1e-5)
    if grad:
        weights = torch.randn_like(expected)
        (expected_grad,) = torch.autograd.grad((expected * weights).sum(), windows)
        (folded_grad,) = torch.autograd.grad((folded * weights.transpose(1, 2)).sum(), windows)
        torch.testing.assert_close(folded_grad, expected_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
def test_head_ordered_qkv_weights_are_cached_in_inference_and_follow_in_place_changes(version):
    model = tiny_backbone(version).eval()
    for norm in model.modules():  # V2 zero-inits its post-norms, which would hide the attention's change
        if isinstance(norm, torch.nn.LayerNorm):
            torch.nn.init.ones_(norm.weight)
    images = torch.rand(2, 3, 64, 96)
    shifted = model.layers[0].blocks[1]
    with torch.no_grad():
        before = model(images)
        assert len(shifted.attn._head_order_cache) == 1 and not model.layers[0].blocks[0].attn._head_order_cache
        shifted.attn.qkv.weight.mul_(3.0)  # e.g. load_state_dict copies in place
        after = model(images)
    expected = model(images)  # with autograd on: nothing cached
    assert not torch.allclose(after[0], before[0])
    for a, e in zip(after, expected):
        torch.testing.assert_close(a, e.detach(), rtol=1e-5, atol=1e-5)


def test_stage_that_fits_one_window_is_not_shifted():
    """Design choice (README): like official classification code and torchvision, a dimension whose
    padded size fits in one window is not shifted; the official detection backbone shifts and masks."""
    stage = BasicLayer(dim=8, depth=2, num_heads=2, window_size=7).eval()
    regular, shifted, mask = stage.window_plan(5, 6, torch.device("cpu"))  # pads to 7 x 7: one window
    assert mask is None and not shifted.geometry.is_shifted
    for routes in ("source_tokens", "padding_slots", "token_slots"):
        assert torch.equal(getattr(shifted, routes), getattr(regular, routes))


def test_frozen_stages_stay_in_eval_without_gradients():
    model = tiny_backbone(frozen_stages=2, drop_path_rate=0.1)
    model.train()
    frozen = [model.patch_embed, model.layers[0], model.layers[1]]
    assert all(not m.training for m in frozen) and model.layers[2].training
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.layers[2].parameters())
    assert all(p.requires_grad for p in model.patch_embed.parameters()) is False
    only_embed = tiny_backbone(frozen_stages=0)
    assert not any(p.requires_grad for p in only_embed.patch_embed.parameters())
    assert all(p.requires_grad for p in only_embed.layers[0].parameters())


def test_drop_path_rate_increases_linearly_over_blocks():
    model = SwinTransformer(**{**TINY, "drop_path_rate": 0.3})
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for layer in model.layers for b in layer.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert all(b > a for a, b in zip(rates, rates[1:]))


def test_activation_checkpointing_gives_identical_outputs_and_gradients(device):
    torch.manual_seed(0)
    plain = tiny_backbone().to(device)
    checkpointed = tiny_backbone(use_checkpoint=True).to(device)
    checkpointed.load_state_dict(plain.state_dict())
    image = torch.rand(2, 3, 72, 88).to(device)
    outputs = []
    for model in (plain, checkpointed):
        model.train()
        loss = sum(o.square().mean() for o in model(image))
        loss.backward()
        outputs.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    # CUDA: no determinism flags are set, so cuDNN/cuBLAS may pick other algorithms (some with atomic
    # accumulation) for the recomputed forward and its backward: equal up to fp32 rounding
    tolerance = dict(rtol=0, atol=1e-7) if device == "cpu" else dict(rtol=1e-5, atol=1e-6)
    if device == "cpu":
        assert torch.equal(outputs[0][0], outputs[1][0])
    else:
        torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=1e-6, atol=0)
    for name, grad in outputs[0][1].items():
        torch.testing.assert_close(outputs[1][1][name], grad, **tolerance)


def test_absolute_position_embedding_is_resized_to_the_token_grid():
    model = tiny_backbone(ape=True, img_size=64).eval()
    assert model.absolute_pos_embed.shape == (1, 16 * 16, 16)
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 96, 80))
    assert outputs[0].shape[-2:] == (24, 20)


# function_scoped_fixture: ``device`` is only a name (and TF32 off on CUDA), the same for every example
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(32, 700), width=st.integers(32, 700), batch=st.integers(1, 3),
)
def test_any_size_and_batch_gives_per_image_features_equal_to_running_alone(device, height, width, batch):
    torch.manual_seed(0)
    model = SwinTransformer(embed_dim=8, depths=(1, 2, 1, 1), num_heads=(1, 1, 2, 2), num_classes=0,
                            out_indices=(0, 1, 2, 3), drop_path_rate=0.0).eval().to(device)
    images = torch.rand(batch, 3, height, width).to(device)
    with torch.no_grad():
        together = model(images)
        alone = model(images[-1:])
    for i, (t, a) in enumerate(zip(together, alone)):
        stride = 4 * 2**i
        assert t.shape == (batch, 8 * 2**i, -(-height // stride), -(-width // stride))
        torch.testing.assert_close(t[-1:], a, atol=1e-5, rtol=1e-5)
