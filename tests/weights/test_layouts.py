"""Checkpoint layouts against the libraries that write them: each peer builds its own Swin (random
weights, every parameter perturbed, biases, norms and bias tables included) and saves it in its own
format; :func:`to_official` converts it, the project's model loads it with ``strict=True``, and its
logits match the peer's forward. The mmdet and detectron2 layouts are written from an official state
dict by those projects' published conversion rules, and must convert back to the very same tensors.
"""
from __future__ import annotations

import pickle

import pytest
import timm
import torch
import torchvision
import transformers
from safetensors.torch import load_file
from timm.models.swin_transformer import SwinTransformer as TimmSwin
from timm.models.swin_transformer_v2 import SwinTransformerV2 as TimmSwinV2
from torchvision.models import swin_transformer as tv_swin

from swin_scratch.models.swin import SwinTransformer, swin_tiny
from swin_scratch.models.swin_v2 import SwinTransformerV2, swin_v2_tiny
from swin_scratch.weights.files import CheckpointError, read_checkpoint
from swin_scratch.weights.layouts import LAYOUTS, detect_layout, is_swin_v2, to_official, unfold_to_concat_order

# one small Swin for every library: 64² images, 2 stages (so one patch merging), 4x4 windows
TINY = dict(embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=4, num_classes=10)
TINY_IMAGE = (2, 3, 64, 64)
TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter moved off its init (norms off 1/0, biases off 0, tables off their init), in eval mode."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def assert_logits_match(ours: torch.nn.Module, official: dict[str, torch.Tensor], peer_forward, shape) -> None:
    ours.load_state_dict(official, strict=True)
    images = torch.randn(shape)
    with torch.no_grad():
        expected, actual = peer_forward(images), ours.eval()(images)
    torch.testing.assert_close(actual, expected, **TOLERANCE)


def ours_v1_tiny() -> SwinTransformer:
    return SwinTransformer(img_size=64, **TINY)


def ours_v2_tiny() -> SwinTransformerV2:
    return SwinTransformerV2(img_size=64, **TINY)


# ---------------------------------------------------------------------------------------------
# The peers, each saving in its own format.


def timm_v1_tiny() -> torch.nn.Module:
    return perturbed(TimmSwin(img_size=64, patch_size=4, **TINY))


def timm_v2_tiny() -> torch.nn.Module:
    return perturbed(TimmSwinV2(img_size=64, patch_size=4, **TINY))


def torchvision_tiny(version: int) -> torch.nn.Module:
    blocks = {1: {}, 2: dict(block=tv_swin.SwinTransformerBlockV2, downsample_layer=tv_swin.PatchMergingV2)}[version]
    return perturbed(tv_swin.SwinTransformer(
        patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4], num_classes=10,
        **blocks,
    ))


def hf_tiny(version: int) -> torch.nn.Module:
    config = dict(image_size=64, patch_size=4, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=4,
                  num_labels=10)
    if version == 1:
        return perturbed(transformers.SwinForImageClassification(transformers.SwinConfig(**config)))
    config["pretrained_window_sizes"] = [0, 0]
    return perturbed(transformers.Swinv2ForImageClassification(transformers.Swinv2Config(**config)))


def hf_saved(model: torch.nn.Module, folder) -> dict[str, torch.Tensor]:
    """What a Hub repository holds: save_pretrained's model.safetensors, read back."""
    model.save_pretrained(folder)
    return load_file(folder / "model.safetensors")


def official_v1_tiny(detection: bool = False) -> dict[str, torch.Tensor]:
    """An official-layout state dict: the project's model, perturbed (detection mode: norm0..norm{n-1}, no head)."""
    mode = dict(num_classes=0, out_indices=(0, 1)) if detection else {}
    return perturbed(SwinTransformer(img_size=64, **{**TINY, **mode})).state_dict()


def official_v2_tiny() -> dict[str, torch.Tensor]:
    """An official V2 state dict, written independently of this project: timm's V2 through timm's own filter."""
    official = timm_v2_tiny().state_dict()
    official = {key.replace("head.fc.", "head."): value for key, value in official.items()}
    moved = {}
    for key, value in official.items():  # timm's start-of-stage merging back to the end of the stage before
        parts = key.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) - 1)
        moved[".".join(parts)] = value
    return moved


# mmdet's published swin2mmdet rules (mmdet/models/utils/ckpt_convert.py, swin_converter), official -> mmdet


def official_to_mmdet(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    def reduction_to_unfold(weight):  # (out, 4C): groups (x0, x1, x2, x3) -> unfold channel c * 4 + k
        out_channels, in_channels = weight.shape
        grouped = weight.reshape(out_channels, 4, in_channels // 4)
        return grouped[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(out_channels, in_channels)

    def norm_to_unfold(vector):
        grouped = vector.reshape(4, vector.shape[0] // 4)
        return grouped[[0, 2, 1, 3], :].transpose(0, 1).reshape(vector.shape[0])

    mmdet = {}
    for key, value in official.items():
        if key.startswith("head"):
            continue
        new_key, new_value = key, value
        if key.startswith("layers"):
            if "attn." in key:
                new_key = key.replace("attn.", "attn.w_msa.")
            elif "mlp.fc1." in key:
                new_key = key.replace("mlp.fc1.", "ffn.layers.0.0.")
            elif "mlp.fc2." in key:
                new_key = key.replace("mlp.fc2.", "ffn.layers.1.")
            elif "downsample" in key:
                new_value = reduction_to_unfold(value) if "reduction." in key else norm_to_unfold(value)
            new_key = new_key.replace("layers", "stages", 1)
        elif key.startswith("patch_embed"):
            new_key = key.replace("proj", "projection")
        mmdet["backbone." + new_key] = new_value
    return mmdet


MMDET_DETECTOR_PARTS = {
    "neck.lateral_convs.0.conv.weight": torch.zeros(8, 32, 1, 1),
    "rpn_head.rpn_cls.weight": torch.zeros(3, 8, 1, 1),
    "roi_head.bbox_head.fc_cls.weight": torch.zeros(81, 16),
}


def as_numpy(state: dict[str, torch.Tensor], prefix: str) -> dict:
    return {prefix + key: value.numpy() for key, value in state.items()}


def assert_same_tensors(converted: dict[str, torch.Tensor], official: dict[str, torch.Tensor]) -> None:
    assert sorted(converted) == sorted(official)
    different = [key for key in official if not torch.equal(converted[key], official[key])]
    assert not different, f"tensors differ after the round trip: {different[:4]}"


# ---------------------------------------------------------------------------------------------
# Swin V1: logits of the peer's own forward.


def test_timm_swin_tiny_converts_to_logits_equal_to_timms():
    peer = perturbed(timm.create_model("swin_tiny_patch4_window7_224", pretrained=False))
    official, layout = to_official(peer.state_dict())
    assert layout.name == "timm-v1"
    assert_logits_match(swin_tiny(), official, peer, (1, 3, 224, 224))


def test_timm_features_only_layers_n_keys_convert_to_the_same_stage_outputs():
    peer = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, features_only=True, img_size=64,
                             embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=4, out_indices=(0, 1))
    perturbed(peer)
    assert any(key.startswith("layers_1.") for key in peer.state_dict())
    official, layout = to_official(peer.state_dict())
    assert layout.name == "timm-v1"
    ours = ours_v1_tiny().eval()
    result = ours.load_state_dict(official, strict=False)
    assert result.unexpected_keys == [] and sorted(result.missing_keys) == ["head.bias", "head.weight", "norm.bias",
                                                                           "norm.weight"]
    images = torch.randn(TINY_IMAGE)
    with torch.no_grad():
        for actual, expected in zip(ours.forward_stages(images), peer(images), strict=True):
            torch.testing.assert_close(actual, expected, **TOLERANCE)


def test_torchvision_swin_t_converts_to_logits_equal_to_torchvisions():
    peer = perturbed(torchvision.models.swin_t(weights=None))
    official, layout = to_official(peer.state_dict())
    assert layout.name == "torchvision-v1"
    assert_logits_match(swin_tiny(), official, peer, (1, 3, 224, 224))


def test_hf_swin_safetensors_convert_to_logits_equal_to_transformers(tmp_path):
    peer = hf_tiny(1)
    official, layout = to_official(hf_saved(peer, tmp_path))
    assert layout.name == "hf-swin"
    assert_logits_match(ours_v1_tiny(), official, lambda images: peer(pixel_values=images).logits, TINY_IMAGE)


def test_hf_swin_in_memory_names_convert_to_logits_equal_to_transformers():
    peer = hf_tiny(1)  # transformers >= 5 renames in memory (attention.q_proj, ...); files keep query/key/value
    official, layout = to_official(peer.state_dict())
    assert layout.name == "hf-swin"
    assert_logits_match(ours_v1_tiny(), official, lambda images: peer(pixel_values=images).logits, TINY_IMAGE)


# ---------------------------------------------------------------------------------------------
# mmdet and detectron2: written from an official dict, converted back to the same tensors.


def test_mmdet_swin_layout_converts_back_to_the_official_tensors():
    official = official_v1_tiny(detection=True)
    mmdet = official_to_mmdet(official)
    assert not torch.equal(mmdet["backbone.stages.0.downsample.reduction.weight"],
                           official["layers.0.downsample.reduction.weight"])  # the unfold order is another order
    converted, layout = to_official({"state_dict": {**mmdet, **MMDET_DETECTOR_PARTS}, "meta": {}})
    assert layout.name == "mmdet-swin"
    assert_same_tensors(converted, official)
    SwinTransformer(img_size=64, **{**TINY, "num_classes": 0, "out_indices": (0, 1)}).load_state_dict(converted)


def test_mmdet_detector_heads_are_left_out_and_reported():
    mmdet = official_to_mmdet(official_v1_tiny(detection=True))
    _, layout = to_official({"state_dict": {**mmdet, **MMDET_DETECTOR_PARTS}})
    assert layout.left_out == tuple(sorted(MMDET_DETECTOR_PARTS))


def test_unfold_order_patch_merging_equals_official_concat_after_reordering():
    """mmdet's PatchMerging (nn.Unfold 2x2 -> LN -> Linear) with its weights computes what the official
    concat (x0, x1, x2, x3) -> LN -> Linear does with the reordered ones."""
    channels, x = 8, torch.randn(2, 6, 6, 8)  # (B, H, W, C)
    norm, reduction = torch.nn.LayerNorm(4 * channels), torch.nn.Linear(4 * channels, 2 * channels, bias=False)
    perturbed(norm)
    perturbed(reduction)
    unfolded = torch.nn.functional.unfold(x.permute(0, 3, 1, 2), kernel_size=2, stride=2)  # (B, 4C, L)
    expected = reduction(norm(unfolded.transpose(1, 2)))  # (B, L, 2C), L row-major over the 3x3 grid
    concat = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1).flatten(1, 2)
    with torch.no_grad():
        norm.weight.copy_(unfold_to_concat_order(norm.weight, dim=0))
        norm.bias.copy_(unfold_to_concat_order(norm.bias, dim=0))
        reduction.weight.copy_(unfold_to_concat_order(reduction.weight, dim=1))
    torch.testing.assert_close(reduction(norm(concat)), expected, rtol=1e-5, atol=1e-6)


def test_swin_transformer_object_detection_checkpoint_gives_the_official_tensors():
    official = official_v1_tiny(detection=True)
    detector = {**{"backbone." + key: value for key, value in official.items()}, **MMDET_DETECTOR_PARTS}
    converted, layout = to_official({"state_dict": detector, "meta": {"epoch": 36}})
    assert layout.name == "mmdet-official" and layout.left_out == tuple(sorted(MMDET_DETECTOR_PARTS))
    assert_same_tensors(converted, official)


def test_swint_detectron2_pkl_of_numpy_arrays_gives_the_official_tensors(tmp_path):
    official = official_v1_tiny(detection=True)
    path = tmp_path / "swin_tiny_d2.pkl"
    with open(path, "wb") as handle:
        pickle.dump(as_numpy(official, "backbone.bottom_up."), handle)
    converted, layout = to_official(read_checkpoint(path))  # the project's numpy-only reader
    assert layout.name == "detectron2-v1" and layout.prefix == "backbone.bottom_up."
    assert_same_tensors(converted, official)
    SwinTransformer(img_size=64, **{**TINY, "num_classes": 0, "out_indices": (0, 1)}).load_state_dict(converted)


def test_mask2former_converted_pkl_without_prefix_is_detectron2(tmp_path):
    official = official_v1_tiny()
    state = {"model": as_numpy(official, ""), "__author__": "third_party", "matching_heuristics": True}
    converted, layout = to_official(state)
    assert layout.name == "detectron2-v1" and layout.prefix == ""
    assert_same_tensors(converted, official)


def test_detectron2_fpn_and_heads_are_left_out_and_reported():
    official = official_v1_tiny(detection=True)
    heads = {"backbone.fpn_lateral2.weight": torch.zeros(1), "roi_heads.box_predictor.cls_score.weight": torch.zeros(1)}
    state = {**{"backbone.bottom_up.swin." + key: value for key, value in official.items()}, **heads}
    converted, layout = to_official({"model": state, "iteration": 100})
    assert layout.name == "detectron2-v1" and layout.left_out == tuple(sorted(heads))
    assert_same_tensors(converted, official)


def test_module_prefixes_and_model_wrapper_are_removed():
    official = official_v1_tiny()
    converted, layout = to_official({"model": {"module." + key: value for key, value in official.items()}, "epoch": 3})
    assert layout.name == "official-v1"
    assert_same_tensors(converted, official)


def test_stored_index_buffers_are_dropped_silently():
    official = official_v1_tiny()
    stored = {**official, "layers.0.blocks.1.attn_mask": torch.zeros(16, 16, 16),
              "layers.0.blocks.0.attn.relative_position_index": torch.zeros(16, 16, dtype=torch.long)}
    converted, layout = to_official(stored)
    assert_same_tensors(converted, official)
    assert layout.left_out == ()


# ---------------------------------------------------------------------------------------------
# Detection.

STATES = {
    "official-v1": lambda tmp: official_v1_tiny(),
    "official-v2": lambda tmp: official_v2_tiny(),
    "mmdet-official": lambda tmp: {"state_dict": {"backbone." + k: v for k, v in official_v1_tiny(True).items()}},
    "mmdet-swin": lambda tmp: {"state_dict": official_to_mmdet(official_v1_tiny(True))},
    "timm-v1": lambda tmp: timm_v1_tiny().state_dict(),
    "timm-v2": lambda tmp: timm_v2_tiny().state_dict(),
    "torchvision-v1": lambda tmp: torchvision_tiny(1).state_dict(),
    "torchvision-v2": lambda tmp: torchvision_tiny(2).state_dict(),
    "hf-swin": lambda tmp: hf_saved(hf_tiny(1), tmp),
    "hf-swinv2": lambda tmp: hf_saved(hf_tiny(2), tmp),
    "detectron2-v1": lambda tmp: {k: v for k, v in as_numpy(official_v1_tiny(True), "backbone.bottom_up.").items()},
    "detectron2-v2": lambda tmp: {"model": as_numpy(official_v2_tiny(), "backbone."), "__author__": "third_party"},
}


def test_every_layout_of_the_table_has_a_detection_case():
    assert sorted(STATES) == sorted(LAYOUTS)


@pytest.mark.parametrize("name", list(STATES))
def test_detect_layout_names_the_layout(name, tmp_path):
    assert detect_layout(STATES[name](tmp_path)).name == name


@pytest.mark.parametrize("name", list(STATES))
def test_converted_weights_are_v2_exactly_for_v2_layouts(name, tmp_path):
    official, layout = to_official(STATES[name](tmp_path))
    assert is_swin_v2(official) == (layout.version == 2) == name.endswith("v2")


def test_every_layout_names_where_it_comes_from_and_what_decides_it():
    for layout in LAYOUTS.values():
        assert layout.title and layout.origin and layout.decisive and layout.conversion
        assert layout.version in (1, 2) and layout.family in ("official", "timm", "torchvision", "hf", "mmdet")


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_resnet_state_dict_gives_one_line_error_naming_resnet_and_the_accepted_layouts():
    with pytest.raises(CheckpointError) as error:
        to_official(torchvision.models.resnet50(weights=None).state_dict())
    message = str(error.value)
    assert "\n" not in message
    assert "looks like a ResNet" in message and "official-v1" in message and "hf-swinv2" in message


def test_bert_state_dict_gives_one_line_error_naming_bert():
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32)
    with pytest.raises(CheckpointError, match=r"^not a Swin checkpoint: it looks like a BERT-like") as error:
        detect_layout(transformers.BertModel(config).state_dict())
    assert "\n" not in str(error.value)


def test_a_dict_without_tensors_is_refused():
    with pytest.raises(CheckpointError, match="holds no tensors"):
        to_official({"epoch": 3, "config": {}})


def test_an_explicit_layout_that_does_not_fit_is_refused():
    with pytest.raises(CheckpointError, match="not in layout torchvision-v1"):
        to_official(official_v1_tiny(), LAYOUTS["torchvision-v1"])


def test_an_explicit_layout_skips_detection():
    official = official_v1_tiny()
    converted, layout = to_official({"model": official}, LAYOUTS["official-v1"])
    assert layout.name == "official-v1"
    assert_same_tensors(converted, official)


def test_two_backbones_in_one_dict_are_refused():
    official = official_v1_tiny()
    both = {**{"student." + k: v for k, v in official.items()}, **{"teacher." + k: v for k, v in official.items()}}
    with pytest.raises(CheckpointError, match="holds 2 Swin backbones"):
        detect_layout(both)


# ---------------------------------------------------------------------------------------------
# Swin V2: logits of the peer's own forward, into the project's V2 model.


def test_timm_swinv2_tiny_converts_to_logits_equal_to_timms():
    peer = perturbed(timm.create_model("swinv2_tiny_window8_256", pretrained=False))
    official, layout = to_official(peer.state_dict())
    assert layout.name == "timm-v2"
    assert_logits_match(swin_v2_tiny(), official, peer, (1, 3, 256, 256))


def test_torchvision_swin_v2_t_converts_to_logits_equal_to_torchvisions():
    peer = perturbed(torchvision.models.swin_v2_t(weights=None))
    official, layout = to_official(peer.state_dict())
    assert layout.name == "torchvision-v2"
    assert_logits_match(swin_v2_tiny(), official, peer, (1, 3, 256, 256))


def test_hf_swinv2_safetensors_convert_to_logits_equal_to_transformers(tmp_path):
    peer = hf_tiny(2)
    official, layout = to_official(hf_saved(peer, tmp_path))
    assert layout.name == "hf-swinv2"
    assert_logits_match(ours_v2_tiny(), official, lambda images: peer(pixel_values=images).logits, TINY_IMAGE)


def test_hf_swinv2_logit_scale_of_shape_1_heads_1_1_is_normalised():
    state = hf_tiny(2).state_dict()
    reshaped = {key: value[None] if key.endswith("logit_scale") else value for key, value in state.items()}
    official, _ = to_official(reshaped)
    ours_v2_tiny().load_state_dict(official, strict=True)
    assert official["layers.1.blocks.0.attn.logit_scale"].shape == (4, 1, 1)


def test_the_docs_show_the_layout_table():
    from helpers.tools import REPO
    from swin_scratch.weights.layouts import markdown_table

    assert markdown_table() in (REPO / "docs/weights.md").read_text()
