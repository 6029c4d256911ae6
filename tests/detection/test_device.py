"""MODEL.DEVICE cuda on a machine without a usable GPU: one warning line, then the CPU
(swin_scratch.detection.device)."""
from __future__ import annotations

import pytest

import swin_scratch.detection.device as device
from swin_scratch.detection.config import get_swin_cfg


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(device, "cuda_is_usable", lambda: False)


@pytest.mark.parametrize("requested", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_falls_back_to_the_cpu_with_one_warning(no_cuda, capsys, requested):
    cfg = get_swin_cfg("swin_coco.yaml", ["MODEL.DEVICE", requested])
    assert device.resolve_device(cfg) == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: MODEL.DEVICE is {requested!r} but this machine")


def test_cpu_and_available_gpus_are_kept_silently(monkeypatch, capsys):
    assert device.resolve_device(get_swin_cfg("swin_shapes.yaml")) == "cpu"
    monkeypatch.setattr(device, "cuda_is_usable", lambda: True)
    assert device.resolve_device(get_swin_cfg("swin_coco.yaml")) == "cuda"
    assert capsys.readouterr().err == ""


def test_falling_back_turns_off_fp16_mixed_precision_and_keeps_bf16(no_cuda):
    cfg = get_swin_cfg("swin_coco.yaml", ["SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.PRECISION", "fp16"])
    assert device.use_available_device(cfg) == "cpu"
    assert cfg.MODEL.DEVICE == "cpu" and not cfg.SOLVER.AMP.ENABLED
    cfg = get_swin_cfg("swin_coco.yaml", ["SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.PRECISION", "bf16"])
    device.use_available_device(cfg)
    assert cfg.SOLVER.AMP.ENABLED  # bf16 autocast runs on CPUs


def test_an_explicit_cpu_config_keeps_its_settings(no_cuda):
    cfg = get_swin_cfg("swin_shapes.yaml", ["SOLVER.AMP.ENABLED", "True"])
    device.use_available_device(cfg)
    assert cfg.SOLVER.AMP.ENABLED  # nothing changed behind the user's back
