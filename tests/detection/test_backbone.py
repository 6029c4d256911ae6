"""The Swin detectron2 backbone: output shapes and strides, any input size."""
from __future__ import annotations

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from swin_scratch.detection.config import get_swin_cfg

TINY = ["MODEL.SWIN.EMBED_DIM", "24", "MODEL.SWIN.DEPTHS", "[1, 1, 1, 1]", "MODEL.SWIN.NUM_HEADS", "[1, 2, 3, 4]"]


def _backbone(name: str, extra=()):
    cfg = get_swin_cfg("swin_shapes.yaml", TINY + ["MODEL.BACKBONE.NAME", name, *extra])
    return build_backbone(cfg, ShapeSpec(channels=3))


def test_swin_backbone_reports_strides_4_to_32_and_channels():
    backbone = _backbone("build_swin_backbone")
    shapes = backbone.output_shape()
    strides = {name: spec.stride for name, spec in shapes.items()}
    assert strides == {"stage2": 4, "stage3": 8, "stage4": 16, "stage5": 32}
    assert [shapes[f"stage{i}"].channels for i in range(2, 6)] == [24, 48, 96, 192]
    assert backbone.size_divisibility == 32


@pytest.mark.parametrize("height,width", [(64, 96), (100, 130), (33, 47)])
def test_swin_backbone_outputs_follow_the_strides_for_any_size(height, width):
    backbone = _backbone("build_swin_backbone").eval()
    with torch.no_grad():
        features = backbone(torch.rand(2, 3, height, width))
    for name, spec in backbone.output_shape().items():
        expected = (-(-height // spec.stride), -(-width // spec.stride))
        assert features[name].shape == (2, spec.channels, *expected), name


def test_fpn_backbone_outputs_p2_to_p6():
    backbone = _backbone("build_swin_fpn_backbone").eval()
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 128, 160))
    assert sorted(features) == ["p2", "p3", "p4", "p5", "p6"]
    assert features["p2"].shape == (1, 64, 32, 40) and features["p6"].shape == (1, 64, 2, 3)


def test_retinanet_backbone_outputs_p3_to_p7_from_the_last_stage():
    backbone = _backbone(
        "build_retinanet_swin_fpn_backbone",
        ["MODEL.SWIN.OUT_FEATURES", "['stage3','stage4','stage5']",
         "MODEL.FPN.IN_FEATURES", "['stage3','stage4','stage5']"],
    ).eval()
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 128, 128))
    assert sorted(features) == ["p3", "p4", "p5", "p6", "p7"]
    assert features["p7"].shape[-2:] == (1, 1)
