"""load_swin_checkpoint: official formats, buffers, heads, window/APE resizing, clear variant errors;
and the convert tool for detectron2's MODEL.WEIGHTS."""
from __future__ import annotations

import pytest
import torch

from swin_scratch.models import SwinTransformer, load_swin_checkpoint
from swin_scratch.weights.files import CheckpointError
from swin_scratch.weights.swin import resize_relative_position_bias_table

TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), drop_path_rate=0.0)


def classifier(**overrides) -> SwinTransformer:
    return SwinTransformer(**{**TINY, "num_classes": 10, **overrides})


def backbone(**overrides) -> SwinTransformer:
    return SwinTransformer(**{**TINY, "num_classes": 0, "out_indices": (0, 1, 2, 3), **overrides})


def official_state(model: SwinTransformer) -> dict[str, torch.Tensor]:
    """What an official file holds: parameters plus the relative_position_index / attn_mask buffers."""
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        if hasattr(module, "relative_position_index"):
            state[f"{name}.relative_position_index"] = module.relative_position_index
            state[f"{name}.attn_mask"] = torch.zeros(1)
    return state


@pytest.mark.parametrize("wrap", ["model", "state_dict", "bare", "module_prefix"])
def test_every_official_wrapping_loads_exactly(wrap, tmp_path):
    source = classifier()
    state = official_state(source)
    checkpoint = {
        "model": {"model": state},
        "state_dict": {"state_dict": state},
        "bare": state,
        "module_prefix": {"model": {f"module.{k}": v for k, v in state.items()}},
    }[wrap]
    torch.save(checkpoint, tmp_path / "ckpt.pth")
    target = classifier()
    report = load_swin_checkpoint(target, tmp_path / "ckpt.pth")
    assert report.missing == [] and report.unexpected == [] and report.resized == []
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_mmdet_backbone_prefix_loads_into_detection_backbone():
    source = backbone()
    state = {f"backbone.{k}": v for k, v in official_state(source).items()}
    state["neck.lateral_convs.0.conv.weight"] = torch.zeros(1)
    target = backbone()
    report = load_swin_checkpoint(target, {"state_dict": state})
    assert report.missing == [] and report.unexpected == []
    image = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        for a, b in zip(source.eval()(image), target.eval()(image)):
            assert torch.equal(a, b)


def test_imagenet_classifier_into_detection_backbone_drops_head_and_final_norm():
    report = load_swin_checkpoint(backbone(), classifier().state_dict())
    assert "head.weight" in report.dropped and "norm.weight" in report.dropped
    assert set(report.initialised) == {f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    assert report.missing == []


def test_head_with_another_class_count_is_dropped():
    report = load_swin_checkpoint(classifier(num_classes=10), classifier(num_classes=21).state_dict())
    assert any(d.startswith("head.weight") for d in report.dropped)
    assert "head.weight" in report.initialised and report.missing == []


def test_window_7_weights_resize_into_window_12_model():
    source, target = classifier(window_size=7), classifier(window_size=12)
    report = load_swin_checkpoint(target, source.state_dict())
    tables = [k for k in report.resized if "relative_position_bias_table" in k]
    assert len(tables) == 8 and "(169, 1)->(529, 1)" in tables[0]
    assert target.layers[0].blocks[0].attn.relative_position_bias_table.shape == (23 * 23, 1)


def test_bias_table_resize_keeps_a_constant_table_constant():
    table = torch.full((13 * 13, 3), 0.25)
    resized = resize_relative_position_bias_table(table, 12)
    assert resized.shape == (23 * 23, 3)
    torch.testing.assert_close(resized, torch.full_like(resized, 0.25))


def test_absolute_position_embedding_is_resized_for_another_image_size():
    source, target = classifier(ape=True, img_size=64), classifier(ape=True, img_size=96)
    report = load_swin_checkpoint(target, source.state_dict())
    assert any(k.startswith("absolute_pos_embed") for k in report.resized)
    # the detection repo's (1, C, H, W) layout is accepted too
    state = dict(source.state_dict())
    state["absolute_pos_embed"] = state["absolute_pos_embed"].transpose(1, 2).reshape(1, 16, 16, 16)
    load_swin_checkpoint(classifier(ape=True, img_size=64), state)


def test_checkpoint_of_another_variant_names_the_first_key_and_both_shapes():
    wider = SwinTransformer(**{**TINY, "embed_dim": 24, "num_heads": (1, 2, 3, 4)}, num_classes=10)
    with pytest.raises(CheckpointError,
                       match=r"'patch_embed\.proj\.weight' has shape \(24, 3, 4, 4\).*\(16, 3, 4, 4\)"):
        load_swin_checkpoint(classifier(), wider.state_dict())
    deeper = SwinTransformer(**{**TINY, "depths": (2, 2, 4, 2)}, num_classes=10)
    with pytest.raises(CheckpointError, match="more blocks"):
        load_swin_checkpoint(classifier(), deeper.state_dict())


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "marker"), "w"))

    torch.save({"model": classifier().state_dict(), "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth"):
        load_swin_checkpoint(classifier(), tmp_path / "evil.pth")
    assert not (tmp_path / "marker").exists()


def test_convert_tool_output_loads_into_the_detectron2_model_and_reproduces_features(tmp_path):
    from detectron2.modeling import build_model

    from swin_scratch.detection.backbone import swin_module
    from swin_scratch.detection.checkpointer import SwinCheckpointer
    from swin_scratch.detection.config import get_swin_cfg
    from swin_scratch.detection.convert import convert_swin_checkpoint

    overrides = ["MODEL.SWIN.EMBED_DIM", "16", "MODEL.SWIN.DEPTHS", "[2, 2, 2, 2]",
                 "MODEL.SWIN.NUM_HEADS", "[1, 2, 2, 4]"]
    cfg = get_swin_cfg("swin_shapes.yaml", overrides)
    source = backbone()
    mmdet_file = tmp_path / "mmdet_coco.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in official_state(source).items()}}, mmdet_file)
    imagenet_file = tmp_path / "imagenet.pth"
    torch.save({"model": official_state(classifier())}, imagenet_file)

    for source_file in (mmdet_file, imagenet_file):
        result = convert_swin_checkpoint(source_file, cfg, tmp_path / "converted.pth")
        assert result["prefix"] == "backbone.bottom_up.swin."
    convert_swin_checkpoint(mmdet_file, cfg, tmp_path / "converted.pth")
    model = build_model(cfg)
    SwinCheckpointer(model).load(str(tmp_path / "converted.pth"))
    image = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        for expected, actual in zip(source.eval()(image), swin_module(model).eval()(image)):
            assert torch.equal(expected, actual)
    # MODEL.WEIGHTS may also name the official file directly
    direct = build_model(cfg)
    SwinCheckpointer(direct).load(str(mmdet_file))
    with torch.no_grad():
        for expected, actual in zip(source(image), swin_module(direct).eval()(image)):
            assert torch.equal(expected, actual)
