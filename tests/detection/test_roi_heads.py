"""MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS: one box per object at test time, across classes."""
from __future__ import annotations

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, pairwise_iou

import swin_scratch.detection  # noqa: F401  (registers the backbones and ROI heads)
from swin_scratch.detection.config import ConfigError, get_swin_cfg
from swin_scratch.detection.roi_heads import ClassAgnosticNMSMixin, class_agnostic_nms

IMAGE_SIZE = 160


def detections(boxes: list[list[float]], scores: list[float], classes: list[int]) -> Instances:
    instances = Instances((IMAGE_SIZE, IMAGE_SIZE))
    instances.pred_boxes = Boxes(torch.tensor(boxes))
    instances.scores = torch.tensor(scores)
    instances.pred_classes = torch.tensor(classes)
    return instances


def test_of_two_overlapping_boxes_of_different_classes_the_higher_scoring_one_is_kept():
    square_as_circle_and_square = detections([[10, 10, 60, 60], [12, 11, 61, 62]], [0.69, 0.79], [1, 0])
    kept = class_agnostic_nms(square_as_circle_and_square, iou_threshold=0.5)
    assert kept.pred_classes.tolist() == [0] and kept.scores.tolist() == pytest.approx([0.79])


def test_boxes_of_different_classes_that_barely_overlap_are_all_kept():
    neighbours = detections([[10, 10, 60, 60], [50, 50, 100, 100]], [0.9, 0.8], [0, 1])
    assert len(class_agnostic_nms(neighbours, iou_threshold=0.5)) == 2


# the ROI heads that can apply it: detectron2's standard and cascade heads, each with the switch
HEADS = {
    "standard": ["MODEL.ROI_HEADS.NAME", "ClassAgnosticNMSROIHeads"],
    "cascade": ["MODEL.ROI_HEADS.NAME", "ClassAgnosticNMSCascadeROIHeads",
                "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "True"],
}


def shapes_model(class_agnostic_nms_on: bool, heads: str = "standard"):
    """An untrained shapes Mask R-CNN whose box predictor(s) score every class alike for every proposal
    and keep the proposal's box: each object candidate comes out once per class unless NMS merges them."""
    cfg = get_swin_cfg("swin_shapes.yaml", [
        "MODEL.SWIN.DEPTHS", "[1, 1, 1, 1]", "MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS", str(class_agnostic_nms_on),
        "TEST.DETECTIONS_PER_IMAGE", "100", *HEADS[heads],
    ])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    predictors = model.roi_heads.box_predictor
    for predictor in predictors if isinstance(predictors, torch.nn.ModuleList) else [predictors]:
        with torch.no_grad():
            predictor.cls_score.weight.zero_()
            predictor.cls_score.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, -10.0]))  # 4 classes alike, no background
            predictor.bbox_pred.weight.zero_()
            predictor.bbox_pred.bias.zero_()
    return model


def predict(model) -> Instances:
    torch.manual_seed(1)
    image = torch.randint(0, 255, (3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
    with torch.no_grad():
        (output,) = model([{"image": image, "height": IMAGE_SIZE, "width": IMAGE_SIZE}])
    return output["instances"]


def max_iou_between_different_boxes(instances: Instances) -> float:
    iou = pairwise_iou(instances.pred_boxes, instances.pred_boxes)
    iou.fill_diagonal_(0)
    return float(iou.max()) if len(instances) > 1 else 0.0


@pytest.mark.parametrize("heads", HEADS)
def test_a_built_shapes_model_keeps_one_box_per_object_with_class_agnostic_nms(heads):
    model = shapes_model(class_agnostic_nms_on=True, heads=heads)
    assert isinstance(model.roi_heads, ClassAgnosticNMSMixin)
    instances = predict(model)
    assert len(instances) > 0 and instances.has("pred_masks")
    assert len(instances.pred_masks) == len(instances)  # masks only for the boxes kept
    assert max_iou_between_different_boxes(instances) <= 0.5


@pytest.mark.parametrize("heads", HEADS)
def test_a_built_shapes_model_keeps_one_box_per_class_without_class_agnostic_nms(heads):
    instances = predict(shapes_model(class_agnostic_nms_on=False, heads=heads))
    assert max_iou_between_different_boxes(instances) > 0.99  # the same box under several classes
    assert len(set(instances.pred_classes.tolist())) == 4


def test_class_agnostic_nms_with_roi_heads_that_cannot_apply_it_is_a_clear_error():
    names = "ClassAgnosticNMSROIHeads.*ClassAgnosticNMSCascadeROIHeads.*StandardROIHeads"
    with pytest.raises(ConfigError, match=f"CLASS_AGNOSTIC_NMS.*{names}"):
        get_swin_cfg("swin_coco.yaml", ["MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS", "True"])


def test_coco_configs_keep_detectron2s_per_class_nms():
    assert get_swin_cfg("swin_coco.yaml").MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS is False
