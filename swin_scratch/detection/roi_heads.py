"""ROI heads that can keep one box per object at test time: class-agnostic NMS.

detectron2's box predictor runs NMS per class, so one object whose scores are split between two
classes (a square that also looks 79% like a circle) comes out twice, once per class. On data where
objects of different classes never share a place, that is a duplicate: an NMS across classes after
the per-class one, with the same IoU threshold, keeps only the highest-scoring box of such a group.
It is for pictures more than for COCO AP, which counts the second, lower-scored class guess as a
chance to be right (on the shapes demo it costs 1.1 to 1.5 bbox AP with cascade heads, 5 with one stage;
docs/detection.md).

``MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS`` turns it on; it needs ``MODEL.ROI_HEADS.NAME`` to be
:class:`ClassAgnosticNMSROIHeads` or :class:`ClassAgnosticNMSCascadeROIHeads` (detectron2's
``StandardROIHeads`` / ``CascadeROIHeads`` otherwise identical, same weights);
``swin_scratch.detection.config`` refuses the key with other ROI heads, so it never silently does nothing.
"""
from __future__ import annotations

import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec, nms
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads.cascade_rcnn import CascadeROIHeads
from detectron2.structures import Instances


def class_agnostic_nms(instances: Instances, iou_threshold: float) -> Instances:
    """The detections of one image with every box dropped that overlaps a higher-scoring box of any
    class by more than ``iou_threshold`` IoU; sorted by decreasing score."""
    keep = nms(instances.pred_boxes.tensor, instances.scores, iou_threshold)
    return instances[keep]


class ClassAgnosticNMSMixin:
    """Adds ``class_agnostic_nms`` to a detectron2 ROI heads class: its test-time boxes also pass an NMS
    across classes, before the mask head (so masks are predicted only for the boxes kept)."""

    @configurable
    def __init__(self, *, class_agnostic_nms: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_agnostic_nms = class_agnostic_nms

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: dict[str, ShapeSpec]) -> dict:
        config = super().from_config(cfg, input_shape)
        config["class_agnostic_nms"] = cfg.MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS
        return config

    def _forward_box(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                     *targets: list[Instances]) -> dict[str, torch.Tensor] | list[Instances]:
        result = super()._forward_box(features, proposals, *targets)  # cascade heads also take targets
        if self.training or not self.class_agnostic_nms:
            return result  # training: the losses dict
        # the per-class NMS threshold; a cascade's boxes come from its last stage's predictor
        predictors = self.box_predictor
        predictor = predictors[-1] if isinstance(predictors, torch.nn.ModuleList) else predictors
        return [class_agnostic_nms(instances, predictor.test_nms_thresh) for instances in result]


@ROI_HEADS_REGISTRY.register()
class ClassAgnosticNMSROIHeads(ClassAgnosticNMSMixin, StandardROIHeads):
    """``StandardROIHeads`` (same weights) that can run an NMS across classes at test time."""


@ROI_HEADS_REGISTRY.register()
class ClassAgnosticNMSCascadeROIHeads(ClassAgnosticNMSMixin, CascadeROIHeads):
    """``CascadeROIHeads`` (same weights) that can run an NMS across classes at test time."""
