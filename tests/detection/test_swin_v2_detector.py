"""Swin V2 in detectron2: MODEL.SWIN.VERSION 2 builds it, it trains a step on the CPU and exports,
and weights of any V2 layout load through MODEL.WEIGHTS (V1 weights are refused, naming both)."""
from __future__ import annotations

import subprocess

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_model

from helpers.shapes import TINY_TRAINING_OVERRIDES, load_tool, make_tiny_shapes, train_net_command
from swin_scratch.detection.backbone import swin_module
from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.detection.optimizer import swin_param_groups
from swin_scratch.models.swin import SwinTransformer
from swin_scratch.models.swin_v2 import SwinTransformerV2
from swin_scratch.weights.files import CheckpointError
from swin_scratch.weights.layouts import to_official

V2 = ["MODEL.SWIN.VERSION", "2", "MODEL.SWIN.WINDOW_SIZE", "4"]
TINY = ["MODEL.SWIN.EMBED_DIM", "16", "MODEL.SWIN.DEPTHS", "[2, 2, 2, 2]", "MODEL.SWIN.NUM_HEADS", "[1, 2, 2, 4]"]


def v2_cfg(*extra: str):
    return get_swin_cfg("swin_shapes.yaml", [*TINY, *V2, *extra])


def test_version_2_builds_a_swin_v2_backbone_with_strides_4_to_32_at_any_size():
    backbone = build_backbone(v2_cfg(), ShapeSpec(channels=3))
    assert isinstance(swin_module(backbone), SwinTransformerV2)
    with torch.no_grad():
        stages = swin_module(backbone).eval()(torch.rand(1, 3, 100, 148))  # any size: padded inside
        features = backbone.eval()(torch.rand(1, 3, 128, 160))  # the detector pads to a multiple of 32
    assert [tuple(stage.shape[-2:]) for stage in stages] == [(25, 37), (13, 19), (7, 10), (4, 5)]
    assert {name: tuple(f.shape[-2:]) for name, f in features.items()} == {
        "p2": (32, 40), "p3": (16, 20), "p4": (8, 10), "p5": (4, 5), "p6": (2, 3)}


def test_an_unknown_version_is_one_config_error():
    from swin_scratch.detection.config import ConfigError

    with pytest.raises(ConfigError, match=r"MODEL\.SWIN\.VERSION must be 1 \(Swin\) or 2 \(Swin V2\), got 3"):
        build_backbone(get_swin_cfg("swin_shapes.yaml", [*TINY, "MODEL.SWIN.VERSION", "3"]), ShapeSpec(channels=3))


def test_the_v2_temperatures_position_bias_mlp_and_qv_biases_take_no_weight_decay():
    backbone = build_backbone(v2_cfg(), ShapeSpec(channels=3))
    groups = {g["name"]: g for g in swin_param_groups(backbone, 1e-4, 0.05, [])}
    names = {id(p): n for n, p in backbone.named_parameters()}
    not_decayed = {names[id(p)] for p in groups["no_decay"]["params"]}
    decayed = {names[id(p)] for p in groups["decay"]["params"]}
    fragments = ("attn.logit_scale", "attn.cpb_mlp.0.weight", "attn.cpb_mlp.2.weight", "attn.q_bias", "attn.v_bias")
    for fragment in fragments:
        assert any(n.endswith(fragment) for n in not_decayed), fragment
        assert not any(n.endswith(fragment) for n in decayed), fragment
    assert any(n.endswith("attn.qkv.weight") for n in decayed)


def test_weights_of_a_hugging_face_swinv2_folder_load_through_model_weights(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.Swinv2Config(image_size=64, embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4],
                                       window_size=4, num_labels=3)
    peer = transformers.Swinv2ForImageClassification(config)
    with torch.no_grad():
        for param in peer.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    peer.save_pretrained(tmp_path / "hf")
    model = build_model(v2_cfg("MODEL.SWIN.PRETRAIN_IMG_SIZE", "64"))
    SwinCheckpointer(model).load(str(tmp_path / "hf"))
    expected, layout = to_official(peer.state_dict())
    assert layout.name == "hf-swinv2"
    loaded = swin_module(model).state_dict()
    checked = [key for key in expected if key in loaded]
    assert len(checked) > 100
    for key in checked:
        assert torch.equal(loaded[key], expected[key]), key


def test_v1_weights_into_a_v2_detector_are_refused_naming_both():
    v1 = SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4, num_classes=3)
    model = build_model(v2_cfg())
    with pytest.raises(CheckpointError, match=r"holds Swin V1 weights \(official-v1\) but the model is a Swin V2"):
        SwinCheckpointer(model)._load_foreign_swin({"model": v1.state_dict()}, "v1.pth")


@pytest.mark.slow
def test_a_v2_mask_rcnn_trains_two_iterations_on_the_cpu_then_its_backbone_exports(tmp_path):
    shapes = make_tiny_shapes(tmp_path / "shapes")
    command = train_net_command(tmp_path / "out", shapes, *V2, "SOLVER.MAX_ITER", "2")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    weights = tmp_path / "out" / "model_final.pth"
    assert weights.is_file()
    export = load_tool("export_model")
    overrides = [*TINY_TRAINING_OVERRIDES, *V2]
    assert export.main(["--config", "swin_shapes.yaml", "--weights", str(weights), "--format", "onnx",
                        "--output", str(tmp_path / "export"), "--size", "160", "160", "--check-size", "192", "224",
                        *overrides]) == 0
    assert (tmp_path / "export" / "swin_backbone.onnx").is_file()


def test_the_v2_demo_config_is_the_demo_with_a_v2_backbone():
    demo, v2_demo = get_swin_cfg("swin_shapes.yaml"), get_swin_cfg("swin_v2_shapes.yaml")
    assert (demo.MODEL.SWIN.VERSION, v2_demo.MODEL.SWIN.VERSION) == (1, 2)
    v2_demo.defrost()
    v2_demo.MODEL.SWIN.VERSION, v2_demo.OUTPUT_DIR = demo.MODEL.SWIN.VERSION, demo.OUTPUT_DIR
    assert v2_demo == demo  # heads, data, schedule: all the same
    backbone = build_backbone(get_swin_cfg("swin_v2_shapes.yaml"), ShapeSpec(channels=3))
    assert isinstance(swin_module(backbone), SwinTransformerV2)
