"""Official mmdet COCO detectors: which files are whole detectors, and their heads' detectron2 names."""
from __future__ import annotations

import torch

from swin_scratch.weights.mmdet import MMDET_TO_DETECTRON2, is_mmdet_detector, mmdet_heads_to_detectron2

BACKBONE = {"backbone.layers.0.blocks.0.attn.qkv.weight": torch.zeros(1)}
HEADS = {
    "neck.lateral_convs.0.conv.weight": "backbone.fpn_lateral2.weight",
    "neck.fpn_convs.3.conv.bias": "backbone.fpn_output5.bias",
    "rpn_head.rpn_conv.weight": "proposal_generator.rpn_head.conv.weight",
    "rpn_head.rpn_cls.bias": "proposal_generator.rpn_head.objectness_logits.bias",
    "rpn_head.rpn_reg.weight": "proposal_generator.rpn_head.anchor_deltas.weight",
    "roi_head.bbox_head.shared_fcs.1.weight": "roi_heads.box_head.fc2.weight",
    "roi_head.bbox_head.fc_cls.weight": "roi_heads.box_predictor.cls_score.weight",
    "roi_head.bbox_head.fc_reg.bias": "roi_heads.box_predictor.bbox_pred.bias",
    "roi_head.mask_head.convs.3.conv.weight": "roi_heads.mask_head.mask_fcn4.weight",
    "roi_head.mask_head.upsample.bias": "roi_heads.mask_head.deconv.bias",
    "roi_head.mask_head.conv_logits.weight": "roi_heads.mask_head.predictor.weight",
}


def test_a_whole_detector_is_told_from_a_backbone_alone():
    assert is_mmdet_detector({**BACKBONE, "neck.lateral_convs.0.conv.weight": torch.zeros(1)})
    assert not is_mmdet_detector(BACKBONE)
    assert not is_mmdet_detector({"layers.0.blocks.0.attn.qkv.weight": torch.zeros(1)})


def test_every_head_tensor_gets_its_detectron2_name_and_keeps_its_value():
    state = {**BACKBONE, **{key: torch.full((1,), float(i)) for i, key in enumerate(HEADS)}}
    renamed, unmapped = mmdet_heads_to_detectron2(state)
    assert unmapped == []
    assert {key: renamed[name] for key, name in HEADS.items()} == {key: state[key] for key in HEADS}
    assert set(renamed) == set(HEADS.values())  # the backbone half is not renamed here


def test_cascade_heads_are_reported_as_unmapped_not_dropped_silently():
    state = {**BACKBONE, "roi_head.bbox_head.0.fc_cls.weight": torch.zeros(1)}
    assert mmdet_heads_to_detectron2(state) == ({}, ["roi_head.bbox_head.0.fc_cls.weight"])


def test_each_rule_covers_one_head_tensor_family():
    assert len(MMDET_TO_DETECTRON2) == len({pattern.pattern for pattern, _ in MMDET_TO_DETECTRON2}) == len(HEADS)
