"""Official Swin COCO checkpoints (Swin-Transformer-Object-Detection, mmdet 2.x) -> detectron2 names.

The backbone half of such a file is translated by :func:`swin_scratch.models.load_swin_checkpoint`;
this module renames the rest (FPN, RPN, the Mask/Faster R-CNN box and mask heads) so that
``--eval-only MODEL.WEIGHTS <official .pth or URL>`` evaluates the released detector, not a
random head. The two codebases compute the same things under other names:

- FPN ``lateral_convs.i`` / ``fpn_convs.i`` (i = 0 at stride 4) are ``fpn_lateral{i+2}`` / ``fpn_output{i+2}``;
- RPN: 3 anchors per location in the same (ratio-major) order, sigmoid objectness, deltas (A, 4);
- box head: 2 shared FCs on the flattened (C, 7, 7) RoI, ``num_classes + 1`` logits with background
  last, class-specific deltas (mmdet's target stds 0.1/0.2 are detectron2's weights 10/5);
- mask head: 4 convs, a 2x deconv, per-class logits.
Cascade heads are not mapped (mmdet's cascade keeps a mask head per stage; detectron2 shares one).
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

from torch import Tensor

Rename = Callable[[re.Match], str]

MMDET_TO_DETECTRON2: list[tuple[re.Pattern, Rename]] = [
    (re.compile(r"neck\.lateral_convs\.(\d+)\.conv\.(weight|bias)"),
     lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}.{m[2]}"),
    (re.compile(r"neck\.fpn_convs\.(\d+)\.conv\.(weight|bias)"),
     lambda m: f"backbone.fpn_output{int(m[1]) + 2}.{m[2]}"),
    (re.compile(r"rpn_head\.rpn_conv\.(weight|bias)"), lambda m: f"proposal_generator.rpn_head.conv.{m[1]}"),
    (re.compile(r"rpn_head\.rpn_cls\.(weight|bias)"),
     lambda m: f"proposal_generator.rpn_head.objectness_logits.{m[1]}"),
    (re.compile(r"rpn_head\.rpn_reg\.(weight|bias)"), lambda m: f"proposal_generator.rpn_head.anchor_deltas.{m[1]}"),
    (re.compile(r"roi_head\.bbox_head\.shared_fcs\.(\d+)\.(weight|bias)"),
     lambda m: f"roi_heads.box_head.fc{int(m[1]) + 1}.{m[2]}"),
    (re.compile(r"roi_head\.bbox_head\.fc_cls\.(weight|bias)"), lambda m: f"roi_heads.box_predictor.cls_score.{m[1]}"),
    (re.compile(r"roi_head\.bbox_head\.fc_reg\.(weight|bias)"), lambda m: f"roi_heads.box_predictor.bbox_pred.{m[1]}"),
    (re.compile(r"roi_head\.mask_head\.convs\.(\d+)\.conv\.(weight|bias)"),
     lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.{m[2]}"),
    (re.compile(r"roi_head\.mask_head\.upsample\.(weight|bias)"), lambda m: f"roi_heads.mask_head.deconv.{m[1]}"),
    (re.compile(r"roi_head\.mask_head\.conv_logits\.(weight|bias)"), lambda m: f"roi_heads.mask_head.predictor.{m[1]}"),
]


def is_mmdet_detector(state: Mapping[str, Tensor]) -> bool:
    """True for a whole mmdet detector (backbone plus neck/heads), not just its backbone."""
    return any(key.startswith("backbone.layers.") for key in state) and any(
        key.startswith(("neck.", "rpn_head.", "roi_head.")) for key in state
    )


def mmdet_heads_to_detectron2(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(tensors under detectron2 names, mmdet keys outside the backbone that have no counterpart)."""
    renamed: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if key.startswith("backbone."):
            continue
        for pattern, rename in MMDET_TO_DETECTRON2:
            match = pattern.fullmatch(key)
            if match:
                renamed[rename(match)] = value
                break
        else:
            unmapped.append(key)
    return renamed, unmapped
