"""Swin Transformer V2: the official state-dict layout, parity with torchvision's and timm's V2 (random
weights, every parameter perturbed), parameter counts, pretrained window sizes, and the project's
machinery (torch.compile in one graph, bf16 autocast, TorchScript / ONNX export, activation
checkpointing, frozen stages, the eager bias cache).

Tests taking ``device`` run on each device of ``DEVICES`` (tests/conftest.py)."""
from __future__ import annotations

import copy
import math

import pytest
import timm
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torchvision.models import swin_v2_b, swin_v2_s, swin_v2_t

from swin_scratch.export.backbone import export_backbone, verify_backbone
from swin_scratch.models.swin_v2 import SwinTransformerV2, swin_v2_base, swin_v2_small, swin_v2_tiny
from swin_scratch.weights.layouts import to_official


def official_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A peer's state dict under the official keys (the package's converter, itself tested against each
    peer's own forward in tests/weights/test_layouts.py)."""
    return to_official(state)[0]


# torchvision.features indices of the four stages
TV_STAGES = (1, 3, 5, 7)


def _relative_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    return float((expected - actual.to(expected.dtype)).abs().max() / expected.abs().max())


def _perturb_(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter moved off its init, so a mis-mapped or ignored tensor shows: norms around 1
    (V2 zero-inits its post-norms, which would hide whole blocks), temperatures spread over
    [log 5, log 150] with one head above the log-100 cap, matrices scaled by 1 + N(0, 0.2) (their
    init's scale kept: fp32 rounding then stays ~1e-5 through Swin-T), vectors + N(0, 0.05)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("logit_scale"):
                param.copy_(torch.empty(param.shape).uniform_(math.log(5), math.log(150), generator=generator))
                param.view(-1)[0] = math.log(200.0)
            elif "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            elif param.dim() >= 2:  # matrices keep their init's scale (trained-like conditioning)
                param.mul_(1.0 + 0.2 * noise)
            else:
                param.add_(0.05 * noise)
    return model


def _tiny(**overrides) -> SwinTransformerV2:
    """A four-stage V2 small enough for CPU tests (window 8, as the named constructors)."""
    options = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), num_classes=0,
                   out_indices=(0, 1, 2, 3), drop_path_rate=0.0)
    return SwinTransformerV2(**{**options, **overrides})


@pytest.fixture(scope="module")
def torchvision_v2_t():
    torch.manual_seed(0)
    return _perturb_(swin_v2_t(weights=None)).eval()


def _on(device: str, reference: torch.nn.Module, ours: torch.nn.Module):
    """Both models on ``device``; the shared module-scoped reference is copied, never moved."""
    if device == "cpu":
        return reference, ours
    return copy.deepcopy(reference).to(device), ours.to(device)


def test_state_dict_has_the_official_v2_keys_and_no_buffers():
    state = swin_v2_tiny().state_dict()
    block = {key.removeprefix("layers.0.blocks.0.") for key in state if key.startswith("layers.0.blocks.0.")}
    assert block == {
        "attn.logit_scale", "attn.q_bias", "attn.v_bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias",
        "attn.cpb_mlp.0.weight", "attn.cpb_mlp.0.bias", "attn.cpb_mlp.2.weight",
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
        "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
    }
    merge = [key for key in state if key.startswith("layers.0.downsample.")]
    assert merge == ["layers.0.downsample.reduction.weight", "layers.0.downsample.norm.weight",
                     "layers.0.downsample.norm.bias"]
    assert state["layers.0.downsample.reduction.weight"].shape == (192, 384)  # Linear 4C -> 2C
    assert state["layers.0.downsample.norm.weight"].shape == (192,)  # LN(2C), after the reduction
    assert state["layers.0.blocks.0.attn.logit_scale"].shape == (3, 1, 1)
    assert torch.allclose(state["layers.0.blocks.0.attn.logit_scale"], torch.tensor(math.log(10.0)))
    assert "layers.3.downsample.reduction.weight" not in state and {"norm.weight", "head.weight"} <= set(state)
    assert not any(key.endswith(("relative_coords_table", "relative_position_index", "k_bias")) for key in state)


def test_torchvision_swin_v2_t_weights_load_with_every_key_mapped(torchvision_v2_t):
    ours = swin_v2_tiny()
    result = ours.load_state_dict(official_keys(torchvision_v2_t.state_dict()), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_logits_match_torchvision_swin_v2_t_at_256(torchvision_v2_t, device):
    ours = swin_v2_tiny().eval()
    ours.load_state_dict(official_keys(torchvision_v2_t.state_dict()))
    reference, ours = _on(device, torchvision_v2_t, ours)
    images = torch.randn(2, 3, 256, 256).to(device)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert _relative_error(expected, actual) <= 1e-4


def _stages_of_both(reference: torch.nn.Module, ours: torch.nn.Module, images: torch.Tensor):
    """Our four stage maps before ``norm{i}`` (B, H, W, C), and torchvision's ``features`` at the same points."""
    with torch.no_grad():
        stages = ours.forward_stages(images)
        x, expected = images, []
        for index, module in enumerate(reference.features):
            x = module(x)
            if index in TV_STAGES:
                expected.append(x)
    return stages, expected


def test_detection_stages_match_torchvision_features_at_a_size_that_is_not_a_window_multiple(torchvision_v2_t, device):
    """200 x 296 -> stage maps 50x74, 25x37, 13x19, 7x10: padding at every stage, odd merges, and a last
    stage that still shifts in one dimension only (10 > 8) and not in the other (7 pads to one window)."""
    ours = swin_v2_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval()
    ours.load_state_dict(official_keys(torchvision_v2_t.state_dict()), strict=False)
    reference, ours = _on(device, torchvision_v2_t, ours)
    stages, expected = _stages_of_both(reference, ours, torch.randn(1, 3, 200, 296).to(device))
    assert [tuple(s.shape[1:3]) for s in stages] == [(50, 74), (25, 37), (13, 19), (7, 10)]
    for ours_stage, tv_stage in zip(stages, expected):
        assert _relative_error(tv_stage, ours_stage) <= 1e-4


def test_stages_match_torchvision_to_float64_rounding(torchvision_v2_t):
    """The same function, not merely close: in float64 only rounding is left (~1e-13 measured), although
    our shifted-window mask is -inf and torchvision's -100."""
    reference = copy.deepcopy(torchvision_v2_t).double()
    ours = swin_v2_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval().double()
    ours.load_state_dict(official_keys(reference.state_dict()), strict=False)
    stages, expected = _stages_of_both(reference, ours, torch.randn(1, 3, 200, 296, dtype=torch.float64))
    for ours_stage, tv_stage in zip(stages, expected):
        assert _relative_error(tv_stage, ours_stage) <= 1e-10


def test_logits_match_timm_swinv2_tiny_window8_256():
    torch.manual_seed(0)
    reference = _perturb_(timm.create_model("swinv2_tiny_window8_256", pretrained=False)).eval()
    ours = swin_v2_tiny().eval()
    ours.load_state_dict(official_keys(reference.state_dict()), strict=True)
    images = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert _relative_error(expected, actual) <= 1e-4


@pytest.mark.parametrize("ours_fn,torchvision_fn,timm_name", [
    (swin_v2_tiny, swin_v2_t, "swinv2_tiny_window8_256"),
    (swin_v2_small, swin_v2_s, "swinv2_small_window8_256"),
    (swin_v2_base, swin_v2_b, "swinv2_base_window8_256"),
], ids=["tiny", "small", "base"])
def test_parameter_count_equals_timm_and_torchvision_without_its_key_bias(ours_fn, torchvision_fn, timm_name):
    """The official layout has q_bias + v_bias (2C per block); torchvision keeps a full 3C qkv bias whose
    key third it zeroes in forward, so it has C more parameters per block; timm has the official layout."""
    with torch.device("meta"):  # counting needs shapes only
        ours, reference = ours_fn(), torchvision_fn()
        timm_model = timm.create_model(timm_name, pretrained=False)
    count = sum(p.numel() for p in ours.parameters())
    key_bias = sum(m.qkv.bias.numel() // 3 for name, m in reference.named_modules() if name.endswith(".attn"))
    assert count == sum(p.numel() for p in timm_model.parameters())
    assert count == sum(p.numel() for p in reference.parameters()) - key_bias


def test_pretrained_window_size_normalises_the_coordinates_fed_to_the_bias_mlp():
    """Window 12 fine-tuned from window 8: the largest offset, 11, maps to 11/7 * 8 (beyond the
    pre-training range [-8, 8]) before the log spacing, not to 8."""
    def table(window: int, pretrained: int) -> torch.Tensor:
        model = _tiny(window_size=window, pretrained_window_sizes=(pretrained,) * 4)
        return model.layers[0].blocks[0].attn.relative_coords_table  # (1, 2M-1, 2M-1, 2)

    fine_tuned, from_scratch = table(12, 8), table(12, 0)
    assert fine_tuned.shape == (1, 23, 23, 2)
    assert torch.allclose(fine_tuned[0, -1, -1], torch.tensor(math.log2(11 / 7 * 8 + 1) / 3).repeat(2))
    assert torch.allclose(from_scratch[0, -1, -1], torch.tensor(math.log2(9) / 3).repeat(2))
    assert torch.allclose(fine_tuned[0, 0, 0], -fine_tuned[0, -1, -1])
    assert torch.equal(table(12, 12), from_scratch)  # pre-trained at the same size: nothing to rescale


def test_logits_match_timm_with_pretrained_window_sizes_other_than_the_window():
    """Window 6 from pre-training window 4, at 96² (stage maps 24, 12, 6: shifted, shifted, one window)."""
    config = dict(img_size=96, embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 2), window_size=6,
                  pretrained_window_sizes=(4, 4, 4), num_classes=10)
    torch.manual_seed(0)
    reference = _perturb_(timm.models.swin_transformer_v2.SwinTransformerV2(**config)).eval()
    ours = SwinTransformerV2(**config).eval()
    ours.load_state_dict(official_keys(reference.state_dict()), strict=True)
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert _relative_error(expected, actual) <= 1e-4


def test_detection_mode_returns_nchw_maps_at_strides_4_to_32_for_any_size():
    model = _tiny().eval()
    with torch.no_grad():
        maps = model(torch.rand(2, 3, 97, 130))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 25, 33), (2, 32, 13, 17), (2, 64, 7, 9), (2, 128, 4, 5)]
    assert all(m.is_contiguous() for m in maps)


@pytest.mark.parametrize("mode", ["classification", "detection"])
def test_compiles_to_one_graph_without_breaks(mode):
    model = _tiny(num_classes=10, out_indices=None) if mode == "classification" else _tiny()
    torch._dynamo.reset()
    with torch.no_grad():
        explanation = torch._dynamo.explain(_perturb_(model).eval())(torch.rand(1, 3, 256, 320))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_compiled_fullgraph_matches_eager_in_inference_and_training():
    """aot_eager: dynamo's graph and autograd tracing, without inductor's minutes of CPU codegen; two
    stages (a regular, a shifted block each, and a patch merging) keep the tracing short."""
    torch._dynamo.reset()
    model = _perturb_(_tiny(depths=(2, 2), num_heads=(1, 2), out_indices=(0, 1)))
    backend = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    images = torch.rand(1, 3, 96, 128)  # stage maps 24 x 32 and 12 x 16: padded, shifted, masked
    with torch.no_grad():
        expected, actual = model.eval()(images), compiled(images)
    for e, a in zip(expected, actual):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)
    model.train()
    sum(m.square().mean() for m in compiled(images)).backward()
    assert backend.frame_count == 2  # one graph for eval, one for training: nothing split
    assert all(p.grad is not None for p in model.parameters())


def test_bf16_autocast_runs_and_stays_close_to_fp32(device):
    model = _perturb_(_tiny(embed_dim=32, num_heads=(1, 2, 4, 8))).eval().to(device)
    images = torch.rand(1, 3, 256, 288).to(device)
    with torch.inference_mode():
        reference = model(images)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            reduced = model(images)
    for fp32, low in zip(reference, reduced):
        error = _relative_error(fp32, low)
        assert 0 < error < 5e-2, error  # > 0: bf16 really ran; < 5%: 8 mantissa bits through 8 blocks


@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".ts"), ("onnx", ".onnx")])
def test_backbone_export_matches_eager_at_the_trace_size_and_another(tmp_path, fmt, suffix):
    model = _perturb_(_tiny()).eval()
    path = export_backbone(model, torch.rand(1, 3, 288, 320), tmp_path / f"swin_v2{suffix}", fmt)
    for size in [(288, 320), (320, 384)]:  # >= 32 * 9 on both sides: every stage shifts, one export serves both
        result = verify_backbone(model, path, torch.rand(1, 3, *size))
        assert result.ok and result.max_relative_error <= 1e-4


def test_activation_checkpointing_gives_the_same_gradients(monkeypatch):
    images = torch.rand(2, 3, 64, 96)
    gradients = []
    calls = []
    checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or checkpoint(*a, **k))
    for use_checkpoint in (False, True):
        torch.manual_seed(0)
        model = _perturb_(_tiny(use_checkpoint=use_checkpoint)).train()
        sum(m.square().mean() for m in model(images)).backward()
        gradients.append({name: p.grad for name, p in model.named_parameters()})
    assert len(calls) == 8  # each of the 8 blocks in the second run, none in the first
    assert gradients[0].keys() == gradients[1].keys()
    for name in gradients[0]:
        torch.testing.assert_close(gradients[1][name], gradients[0][name], rtol=1e-5, atol=1e-7, msg=name)


def test_frozen_stages_get_no_gradients_and_stay_in_eval_mode():
    model = _perturb_(_tiny(frozen_stages=2, drop_path_rate=0.1)).train()
    frozen = [model.patch_embed, model.layers[0], model.layers[1]]
    assert all(not module.training for module in frozen)
    assert all(module.training for module in (model.layers[2], model.layers[3]))
    sum(m.square().mean() for m in model(torch.rand(1, 3, 64, 64))).backward()
    for module in frozen:
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    assert all(p.grad is not None for p in model.layers[2].parameters())


def test_no_weight_decay_keywords_cover_temperatures_bias_mlps_and_query_value_biases():
    model = _tiny(ape=True, img_size=64)
    keywords, names = model.no_weight_decay_keywords(), model.no_weight_decay()
    skipped = {n for n, _ in model.named_parameters() if n in names or any(k in n for k in keywords)}
    assert "absolute_pos_embed" in skipped
    for fragment in ("logit_scale", "cpb_mlp.0.weight", "cpb_mlp.0.bias", "cpb_mlp.2.weight", "q_bias", "v_bias"):
        assert any(n.endswith(fragment) for n in skipped), fragment
    assert not any(n.endswith(("qkv.weight", "proj.weight", "fc1.weight")) for n in skipped)


def test_eager_bias_cache_follows_in_place_weight_changes():
    model = _perturb_(_tiny()).eval()
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before = model(images)
        assert all(block._bias_cache for layer in model.layers for block in layer.blocks)
        model.layers[0].blocks[1].attn.cpb_mlp[2].weight.mul_(3.0)  # e.g. load_state_dict copies in place
        after = model(images)
    expected = model(images)  # with autograd on: no cache
    assert not torch.allclose(after[0], before[0])
    for a, e in zip(after, expected):
        torch.testing.assert_close(a, e.detach(), rtol=1e-5, atol=1e-5)  # fused vs explicit kernel


@pytest.mark.slow
def test_inductor_compile_matches_eager_at_two_sizes_without_recompiling():
    """One stage of a regular and a shifted block (inductor's CPU codegen of a whole model takes minutes);
    both sizes shift every dimension, so one dynamic graph must serve them."""
    torch._dynamo.reset()
    model = _perturb_(_tiny(depths=(2,), num_heads=(1,), out_indices=(0,))).eval()
    backend = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
    compiles_per_size = []
    for height, width in ((256, 320), (320, 384)):
        images = torch.rand(1, 3, height, width)
        with torch.no_grad():
            expected, actual = model(images), compiled(images)
        compiles_per_size.append(backend.frame_count)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    # frames the backend compiled: inductor restarts its first analysis once (V1 too), so only the
    # second size adding none is the property
    assert compiles_per_size[1] == compiles_per_size[0], "the second size recompiled"
