"""Exports run right after writing: TorchScript via torch.jit.load, ONNX via onnxruntime, vs eager PyTorch."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from detectron2.modeling import build_model

from helpers.shapes import REPO
from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.export.backbone import ExportError, export_backbone, run_exported_backbone, verify_backbone
from swin_scratch.export.detector import export_detector, run_exported_detector, verify_detector
from swin_scratch.models import SwinTransformer

FORMATS = [("torchscript", ".ts"), ("onnx", ".onnx")]


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), num_classes=0,
                           out_indices=(0, 1, 2, 3), drop_path_rate=0.0).eval()


@pytest.mark.parametrize("fmt,suffix", FORMATS)
def test_backbone_export_matches_eager_at_the_trace_size_and_other_sizes(backbone, tmp_path, fmt, suffix):
    path = export_backbone(backbone, torch.rand(1, 3, 256, 320), tmp_path / f"swin{suffix}", fmt)
    # other sizes exercise padding, the cyclic shift and the masks computed from shapes in the graph
    for size in [(256, 320), (320, 448), (512, 288)]:
        result = verify_backbone(backbone, path, torch.rand(1, 3, *size))
        assert result.ok and result.max_relative_error <= 1e-4


@pytest.mark.parametrize("size,pattern", [((250, 320), "not a multiple of 32"), ((224, 320), "traced at 256x256")])
def test_backbone_export_refuses_sizes_it_cannot_serve(backbone, tmp_path, size, pattern):
    path = export_backbone(backbone, torch.rand(1, 3, 256, 256), tmp_path / "swin.ts", "torchscript")
    with pytest.raises(ExportError, match=pattern):
        run_exported_backbone(path, torch.rand(1, 3, *size))


def test_small_inputs_get_their_own_export(backbone, tmp_path):
    path = export_backbone(backbone, torch.rand(1, 3, 224, 224), tmp_path / "swin224.onnx", "onnx")
    assert verify_backbone(backbone, path, torch.rand(1, 3, 224, 224)).ok
    with pytest.raises(ExportError, match="traced at 224x224"):
        run_exported_backbone(path, torch.rand(1, 3, 256, 256))


def test_an_unknown_format_is_refused_before_anything_is_written(backbone, tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_backbone(backbone, torch.rand(1, 3, 256, 256), tmp_path / "out" / "swin.tflite", "tflite")
    assert not (tmp_path / "out").exists()


def test_verification_fails_loudly_when_the_export_is_wrong(backbone, tmp_path):
    path = export_backbone(backbone, torch.rand(1, 3, 256, 256), tmp_path / "swin.ts", "torchscript")
    changed = SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), num_classes=0,
                              out_indices=(0, 1, 2, 3)).eval()  # other weights than the exported ones
    with pytest.raises(ExportError, match="FAILED"):
        verify_backbone(changed, path, torch.rand(1, 3, 256, 256))


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    cfg = get_swin_cfg("swin_shapes.yaml", ["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    return build_model(cfg).eval()


@pytest.mark.slow
@pytest.mark.parametrize("fmt,suffix", FORMATS)
def test_mask_rcnn_export_gives_the_same_boxes_scores_classes_masks(detector, tmp_path, fmt, suffix):
    image = torch.randint(0, 255, (3, 160, 192), dtype=torch.uint8)
    path = export_detector(detector, image, tmp_path / f"detector{suffix}", fmt)
    result = verify_detector(detector, path, image)
    assert result.ok and len(result.differences) >= 4
    with pytest.raises(ExportError, match="only accept that size"):
        run_exported_detector(path, torch.randint(0, 255, (3, 128, 192), dtype=torch.uint8))


@pytest.mark.slow
def test_export_tool_writes_verifies_and_prints_differences(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "tools/export_model.py"), "--config", "swin_shapes.yaml", "--format", "onnx",
         "--output", str(tmp_path), "--part", "backbone"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "swin_backbone.onnx").exists()
    assert result.stdout.count("OK") == 2 and "input (1, 3, 320, 448)" in result.stdout
