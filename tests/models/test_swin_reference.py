"""Correct against an independent implementation: torchvision's Swin-T (random weights, mapped), on
each device of ``DEVICES`` (tests/conftest.py; on CUDA with TF32 off, so the fp32 tolerances hold)."""
from __future__ import annotations

import copy

import pytest
import torch
from torchvision.models import swin_t

from swin_scratch.models import load_swin_checkpoint, swin_tiny

# torchvision.features index -> official stage / patch-merging index
TV_STAGES = {1: 0, 3: 1, 5: 2, 7: 3}
TV_MERGES = {2: 0, 4: 1, 6: 2}
TV_MLP = {"mlp.0.": "mlp.fc1.", "mlp.3.": "mlp.fc2."}


def torchvision_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Oracle glue (test-only): rename torchvision's Swin keys to microsoft/Swin-Transformer's."""
    official = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("features.0.0."):
            new = "patch_embed.proj." + parts[-1]
        elif key.startswith("features.0.2."):
            new = "patch_embed.norm." + parts[-1]
        elif key.startswith("features.") and int(parts[1]) in TV_STAGES:
            rest = ".".join(parts[3:])
            for old, replacement in TV_MLP.items():
                rest = rest.replace(old, replacement)
            new = f"layers.{TV_STAGES[int(parts[1])]}.blocks.{parts[2]}.{rest}"
        elif key.startswith("features.") and int(parts[1]) in TV_MERGES:
            new = f"layers.{TV_MERGES[int(parts[1])]}.downsample.{'.'.join(parts[2:])}"
        else:
            new = key  # norm.*, head.*
        official[new] = value
    return official


@pytest.fixture(scope="module")
def torchvision_model():
    torch.manual_seed(0)
    model = swin_t(weights=None).eval()
    # non-trivial biases and tables so that a mis-mapped tensor shows
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "relative_position_bias_table" in name or name.endswith("bias"):
                param.normal_(0, 0.05)
    return model


def _on(device: str, reference: torch.nn.Module, ours: torch.nn.Module):
    """Both models on ``device``; the shared module-scoped reference is copied, never moved."""
    if device == "cpu":
        return reference, ours
    return copy.deepcopy(reference).to(device), ours.to(device)


def test_torchvision_swin_t_weights_load_with_every_key_mapped(torchvision_model):
    ours = swin_tiny()
    report = load_swin_checkpoint(ours, {"model": torchvision_to_official(torchvision_model.state_dict())})
    assert report.missing == [] and report.unexpected == [] and report.resized == []


def test_logits_match_torchvision_swin_t(torchvision_model, device):
    ours = swin_tiny().eval()
    load_swin_checkpoint(ours, torchvision_to_official(torchvision_model.state_dict()))
    reference, ours = _on(device, torchvision_model, ours)
    images = torch.randn(2, 3, 224, 224).to(device)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("height,width", [(300, 500), (256, 352)])
def test_detection_stages_match_torchvision_at_non_window_multiple_sizes(torchvision_model, height, width, device):
    ours = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval()
    load_swin_checkpoint(ours, torchvision_to_official(torchvision_model.state_dict()))
    reference, ours = _on(device, torchvision_model, ours)
    images = torch.randn(1, 3, height, width).to(device)
    with torch.no_grad():
        stages = ours.forward_stages(images)  # pre-norm stage outputs, (B, H, W, C)
        x = images
        expected = []
        for index, module in enumerate(reference.features):
            x = module(x)
            if index in TV_STAGES:
                expected.append(x)
    assert len(stages) == len(expected) == 4
    for ours_stage, tv_stage in zip(stages, expected):
        torch.testing.assert_close(ours_stage, tv_stage, atol=1e-4, rtol=1e-4)
