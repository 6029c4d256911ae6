"""load_swin_checkpoint: official formats, buffers, heads, window/APE resizing, clear variant errors,
nothing half-loaded in silence."""
from __future__ import annotations

import pytest
import torch

from helpers.swin import TINY, backbone, classifier, official_state
from swin_scratch.models import SwinTransformer, load_swin_checkpoint
from swin_scratch.weights.files import CheckpointError
from swin_scratch.weights.swin import resize_relative_position_bias_table


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


def test_a_checkpoint_missing_backbone_tensors_is_an_error_naming_them():
    state = official_state(classifier())
    del state["layers.1.blocks.0.mlp.fc1.weight"]
    with pytest.raises(CheckpointError, match=r"incomplete load .* 1 model parameters the checkpoint does not fill: "
                                              r"layers\.1\.blocks\.0\.mlp\.fc1\.weight"):
        load_swin_checkpoint(classifier(), state)


def test_a_checkpoint_tensor_with_no_place_in_the_model_is_an_error_naming_it():
    state = {**official_state(classifier()), "layers.0.blocks.0.attn.extra_scale": torch.ones(1)}
    with pytest.raises(CheckpointError, match=r"checkpoint tensors with no place in the model: .*extra_scale"):
        load_swin_checkpoint(classifier(), state)


def test_strict_false_loads_what_fits_and_warns_with_the_names(caplog):
    state = official_state(classifier())
    del state["layers.1.blocks.0.mlp.fc1.weight"]
    model = classifier()
    with caplog.at_level("WARNING"):
        report = load_swin_checkpoint(model, state, strict=False)
    assert report.missing == ["layers.1.blocks.0.mlp.fc1.weight"]
    assert "layers.1.blocks.0.mlp.fc1.weight" in caplog.text and "strict=False" in caplog.text
    kept = "layers.1.blocks.0.mlp.fc2.weight"
    assert torch.equal(model.state_dict()[kept], state[kept])


def test_fewer_blocks_than_the_model_names_both_variants():
    shallow = SwinTransformer(**{**TINY, "depths": (2, 2, 1, 2)}, num_classes=10)
    with pytest.raises(CheckpointError, match=r"depths \(2, 2, 1, 2\)\) into the model \(V1, embed_dim 16, "
                                              r"depths \(2, 2, 2, 2\)\)"):
        load_swin_checkpoint(classifier(), shallow.state_dict())


def test_a_resnet_state_dict_says_what_it_looks_like():
    from torchvision.models import resnet18

    with pytest.raises(CheckpointError, match=r"not a Swin checkpoint: it looks like a ResNet"):
        load_swin_checkpoint(classifier(), resnet18().state_dict())


def test_the_report_names_the_layout_it_read():
    report = load_swin_checkpoint(classifier(), {"model": official_state(classifier())})
    assert report.layout == "official-v1" and str(report).startswith("layout official-v1; loaded")
