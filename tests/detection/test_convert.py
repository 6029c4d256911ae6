"""detection/convert.py and tools/convert_swin_checkpoint.py: any layout in, official or detectron2 out."""
from __future__ import annotations

import pickle

import torch
from detectron2.modeling import build_model
from safetensors.torch import save_file

from helpers.swin import backbone, classifier, official_state
from helpers.tools import load_tool
from swin_scratch.detection.backbone import swin_module
from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.detection.convert import convert_swin_checkpoint
from swin_scratch.models import SwinTransformer, load_swin_checkpoint

TINY_CFG = ["MODEL.SWIN.EMBED_DIM", "16", "MODEL.SWIN.DEPTHS", "[2, 2, 2, 2]", "MODEL.SWIN.NUM_HEADS", "[1, 2, 2, 4]"]


def timm_layout(model: SwinTransformer) -> dict[str, torch.Tensor]:
    """The same weights as timm >= 0.9 writes them: patch merging at the start of the next stage, head.fc."""
    renamed = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if len(parts) > 2 and parts[0] == "layers" and parts[2] == "downsample":
            key = ".".join(["layers", str(int(parts[1]) + 1), *parts[2:]])
        elif key.startswith("head."):
            key = "head.fc." + key[len("head."):]
        renamed[key] = value
    return renamed


def test_convert_tool_output_loads_into_the_detectron2_model_and_reproduces_features(tmp_path):
    from detectron2.modeling import build_model

    from swin_scratch.detection.backbone import swin_module
    from swin_scratch.detection.checkpointer import SwinCheckpointer
    from swin_scratch.detection.config import get_swin_cfg

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


def test_the_tool_converts_a_timm_safetensors_file_to_the_official_layout(tmp_path, capsys):
    source = classifier()
    save_file(timm_layout(source), str(tmp_path / "model.safetensors"))
    tool = load_tool("convert_swin_checkpoint")
    assert tool.main([str(tmp_path / "model.safetensors"), str(tmp_path / "official.pth"), "--to", "official"]) == 0
    assert "read layout timm-v1" in capsys.readouterr().out
    target = classifier()
    report = load_swin_checkpoint(target, str(tmp_path / "official.pth"))
    assert report.layout == "official-v1"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_a_detectron2_pkl_written_by_the_tool_loads_natively_with_numpy_arrays(tmp_path, capsys):
    cfg = get_swin_cfg("swin_shapes.yaml", TINY_CFG)
    source = classifier()
    torch.save({"model": official_state(source)}, tmp_path / "imagenet.pth")
    tool = load_tool("convert_swin_checkpoint")
    args = [str(tmp_path / "imagenet.pth"), str(tmp_path / "swin_d2.pkl"), "--config", "swin_shapes.yaml", *TINY_CFG]
    assert tool.main(args) == 0
    assert "read layout official-v1" in capsys.readouterr().out
    with open(tmp_path / "swin_d2.pkl", "rb") as handle:
        stored = pickle.load(handle)["model"]
    assert all(type(value).__module__ == "numpy" for value in stored.values())
    model = build_model(cfg)
    SwinCheckpointer(model).load(str(tmp_path / "swin_d2.pkl"))
    loaded = swin_module(model).state_dict()
    for key, value in source.state_dict().items():
        if key in loaded and not key.startswith(("head.", "norm.")):
            assert torch.equal(loaded[key], value), key
