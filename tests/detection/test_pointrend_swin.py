"""PointRend (detectron2.projects.point_rend) on the Swin backbone: configs compose, one CPU step trains."""
from __future__ import annotations

import torch

from helpers.shapes import TINY_TRAINING_OVERRIDES

# What PointRend's Base-PointRend-RCNN-FPN.yaml states on top of Base-RCNN-FPN (the project's
# configs are not installed with detectron2, so the keys are given here).
POINTREND_INSTANCE_SEGMENTATION = [
    "MODEL.MASK_ON", "True",
    "MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES", "True",
    "MODEL.ROI_MASK_HEAD.NAME", "PointRendMaskHead",
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE", "",
    "MODEL.ROI_MASK_HEAD.FC_DIM", "32",
    "MODEL.ROI_MASK_HEAD.NUM_FC", "2",
    "MODEL.ROI_MASK_HEAD.OUTPUT_SIDE_RESOLUTION", "7",
    "MODEL.ROI_MASK_HEAD.IN_FEATURES", "['p2']",
    "MODEL.ROI_MASK_HEAD.POINT_HEAD_ON", "True",
    "MODEL.POINT_HEAD.FC_DIM", "32",
    "MODEL.POINT_HEAD.NUM_FC", "3",
    "MODEL.POINT_HEAD.IN_FEATURES", "['p2']",
    "MODEL.POINT_HEAD.NUM_CLASSES", "3",
    "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "INPUT.MASK_FORMAT", "bitmask",
    "MODEL.DEVICE", "cpu",
]


def _pointrend_swin_cfg():
    from detectron2.projects.point_rend import add_pointrend_config

    from swin_scratch.detection.config import get_swin_cfg

    cfg = get_swin_cfg("Base-Swin-RCNN-FPN.yaml")
    add_pointrend_config(cfg)
    cfg.merge_from_list(TINY_TRAINING_OVERRIDES + POINTREND_INSTANCE_SEGMENTATION)
    return cfg


def _one_image_batch(height: int = 96, width: int = 128) -> list[dict]:
    from detectron2.structures import BitMasks, Boxes, Instances

    instances = Instances((height, width))
    instances.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 70.0, 80.0], [60.0, 20.0, 120.0, 60.0]]))
    instances.gt_classes = torch.tensor([0, 2])
    masks = torch.zeros(2, height, width, dtype=torch.bool)  # (K, H, W)
    masks[0, 12:80, 10:70] = True
    masks[1, 20:60, 60:120] = True
    instances.gt_masks = BitMasks(masks)
    image = torch.randint(0, 255, (3, height, width), dtype=torch.uint8)  # (C, H, W)
    return [{"image": image, "instances": instances, "height": height, "width": width}]


def test_pointrend_mask_head_on_swin_trains_one_step_and_predicts_masks_on_cpu():
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    cfg = _pointrend_swin_cfg()
    model = build_model(cfg)
    assert type(model.backbone.bottom_up).__name__ == "SwinBackbone"
    assert type(model.roi_heads.mask_head).__name__ == "PointRendMaskHead"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    batch = _one_image_batch()
    with EventStorage(0):
        losses = model(batch)
    assert {"loss_mask", "loss_mask_point", "loss_cls", "loss_rpn_cls"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    point_head_weight = model.roi_heads.mask_head.point_head.predictor.weight.detach().clone()
    total.backward()
    optimizer.step()
    assert not torch.equal(model.roi_heads.mask_head.point_head.predictor.weight, point_head_weight)

    model.eval()
    with torch.no_grad():
        (output,) = model([{key: batch[0][key] for key in ("image", "height", "width")}])
    instances = output["instances"]
    assert instances.image_size == (96, 128)
    assert "pred_masks" in instances.get_fields()
