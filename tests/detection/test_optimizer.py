"""The optimizer's parameter groups: the model's norms, biases and position tables take no weight decay."""
from __future__ import annotations

from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from swin_scratch.detection import swin_param_groups
from swin_scratch.detection.config import get_swin_cfg

TINY = ["MODEL.SWIN.EMBED_DIM", "24", "MODEL.SWIN.DEPTHS", "[1, 1, 1, 1]", "MODEL.SWIN.NUM_HEADS", "[1, 2, 3, 4]"]


def test_no_weight_decay_on_norms_biases_and_position_tables():
    cfg = get_swin_cfg("swin_shapes.yaml", TINY + ["MODEL.SWIN.APE", "True"])
    backbone = build_backbone(cfg, ShapeSpec(channels=3))
    groups = {g["name"]: g for g in swin_param_groups(backbone, 1e-4, 0.05, cfg.SOLVER.NO_WEIGHT_DECAY_KEYS)}
    names = {id(p): n for n, p in backbone.named_parameters()}
    decayed = {names[id(p)] for p in groups["decay"]["params"]}
    not_decayed = {names[id(p)] for p in groups["no_decay"]["params"]}
    assert groups["decay"]["weight_decay"] == 0.05 and groups["no_decay"]["weight_decay"] == 0.0
    assert decayed.isdisjoint(not_decayed)
    assert decayed | not_decayed == set(names.values())
    assert all(n.endswith(".bias") or "norm" in n or "relative_position_bias_table" in n or "absolute_pos_embed" in n
               for n in not_decayed)
    assert any("relative_position_bias_table" in n for n in not_decayed)
    assert any("absolute_pos_embed" in n for n in not_decayed)
    assert any(".norm1.weight" in n for n in not_decayed)
    assert any(n.endswith("attn.qkv.weight") for n in decayed)
    assert any(n.endswith("downsample.reduction.weight") for n in decayed)
    assert any(n.startswith("fpn_") and n.endswith(".weight") for n in decayed)
