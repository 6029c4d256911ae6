"""ROI heads that can keep one box per object at test time: class-agnostic NMS.

detectron2's box predictor runs NMS per class, so one object whose scores are split between two
classes (a square that also looks 79% like a circle) comes out twice, once per class. On data where
objects of different classes never share a place, that is a duplicate: an NMS across classes after
the per-class one, with the same IoU threshold, keeps only the highest-scoring box of such a group.
It is for pictures more than for COCO AP, which counts the second, lower-scored class guess as a
chance to be right (on the shapes demo it costs about 5 bbox AP; docs/detection.md).

``MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS`` turns it on; it needs ``MODEL.ROI_HEADS.NAME`` to be
:class:`ClassAgnosticNMSROIHeads` (a ``StandardROIHeads`` otherwise identical, same weights);
``swin_scratch.detection.config`` refuses the key with other ROI heads, so it never silently does nothing.
"""
from __future__ import annotations

import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec, nms
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.structures import Instances


def class_agnostic_nms(instances: Instances, iou_threshold: float) -> Instances:
    """The detections of one image with every box dropped that overlaps a higher-scoring box of any
    class by more than ``iou_threshold`` IoU; sorted by decreasing score."""
    keep = nms(instances.pred_boxes.tensor, instances.scores, iou_threshold)
    return instances[keep]


@ROI_HEADS_REGISTRY.register()
class ClassAgnosticNMSROIHeads(StandardROIHeads):
    """``StandardROIHeads`` whose test-time boxes, with ``class_agnostic_nms``, also pass an NMS across
    classes (before the mask head, so masks are predicted only for the boxes kept)."""

    @configurable
    def __init__(self, *, class_agnostic_nms: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_agnostic_nms = class_agnostic_nms

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> dict:
        config = super().from_config(cfg, input_shape)
        config["class_agnostic_nms"] = cfg.MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS
        return config

    def _forward_box(self, features: dict[str, torch.Tensor],
                     proposals: list[Instances]) -> dict[str, torch.Tensor] | list[Instances]:
        result = super()._forward_box(features, proposals)
        if self.training or not self.class_agnostic_nms:
            return result  # training: the losses dict
        iou_threshold = self.box_predictor.test_nms_thresh
        return [class_agnostic_nms(instances, iou_threshold) for instances in result]

