"""detectron2's compiled ops (rotated boxes, the C++ COCO evaluator) give the right numbers.

They exist only with detectron2's compiled extension (spec: upstream wheel). Without it (pb1-fallback)
these tests skip, unless SWIN_SCRATCH_EXPECT_COMPILED_OPS is set: `make test-upstream` sets it,
so there a missing or broken extension fails instead of skipping.
"""
from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest
import torch

from swin_scratch.env import has_compiled_extension

pytestmark = pytest.mark.skipif(
    not has_compiled_extension() and not os.environ.get("SWIN_SCRATCH_EXPECT_COMPILED_OPS"),
    reason="detectron2 installed without its compiled extension (pb1-fallback)",
)


def _random_boxes_xyxy(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator) * 80  # (N, 2) x0, y0
    sizes = torch.rand(count, 2, generator=generator) * 40 + 4  # (N, 2) w, h
    return torch.cat([corners, corners + sizes], dim=1)  # (N, 4)


def _xyxy_to_rotated(boxes: torch.Tensor, angle: float = 0.0) -> torch.Tensor:
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2)
    sizes = boxes[:, 2:] - boxes[:, :2]  # (N, 2)
    return torch.cat([centers, sizes, torch.full((len(boxes), 1), angle)], dim=1)  # (N, 5)


def test_extension_is_present_where_expected():
    assert has_compiled_extension(), "SWIN_SCRATCH_EXPECT_COMPILED_OPS is set but detectron2._C does not import"


def test_env_reports_the_compiled_ops_working():
    from swin_scratch.env import compiled_ops_report

    assert compiled_ops_report() == {"nms_rotated": "works", "roi_align_rotated": "works"}


def test_nms_rotated_at_zero_angle_keeps_what_axis_aligned_nms_keeps():
    from detectron2.layers import nms_rotated
    from torchvision.ops import nms  # independent oracle

    boxes = _random_boxes_xyxy(60, seed=1)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(2))
    expected = nms(boxes, scores, 0.3)
    assert torch.equal(nms_rotated(_xyxy_to_rotated(boxes), scores, 0.3), expected)


def test_pairwise_iou_rotated_matches_axis_aligned_iou_at_zero_angle():
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated
    from detectron2.structures import Boxes, pairwise_iou

    first, second = _random_boxes_xyxy(7, seed=3), _random_boxes_xyxy(5, seed=4)
    expected = pairwise_iou(Boxes(first), Boxes(second))  # (7, 5)
    rotated = pairwise_iou_rotated(_xyxy_to_rotated(first), _xyxy_to_rotated(second))
    assert torch.allclose(rotated, expected, atol=1e-4)


def test_pairwise_iou_rotated_of_a_rectangle_and_its_quarter_turn_is_one_third():
    """w = 2h, same center, turned 90 deg: intersection h*h, union 2*(2h*h) - h*h = 3h*h."""
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    rectangle = torch.tensor([[50.0, 40.0, 20.0, 10.0, 0.0]])  # (1, 5) cx, cy, w, h, angle (deg)
    turned = torch.tensor([[50.0, 40.0, 20.0, 10.0, 90.0]])
    assert pairwise_iou_rotated(rectangle, turned).item() == pytest.approx(1 / 3, abs=1e-4)
    assert pairwise_iou_rotated(turned, turned).item() == pytest.approx(1.0, abs=1e-4)


def test_roi_align_rotated_at_zero_angle_equals_aligned_roi_align():
    from detectron2.layers import ROIAlign, ROIAlignRotated

    features = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(5))  # (N, C, H, W)
    boxes = _random_boxes_xyxy(6, seed=6) / 5  # inside the 24x24 map
    batch_index = torch.tensor([0, 1, 0, 1, 0, 1], dtype=torch.float32)[:, None]  # (R, 1)
    axis_aligned = ROIAlign((4, 4), 1.0, 2, aligned=True)(features, torch.cat([batch_index, boxes], 1))
    rotated = ROIAlignRotated((4, 4), 1.0, 2)(features, torch.cat([batch_index, _xyxy_to_rotated(boxes)], 1))
    assert torch.allclose(rotated, axis_aligned, atol=1e-5)


def _coco_fixture() -> tuple[dict, list[dict]]:
    """Ground truth for 3 images x 2 classes, and detections: shifted boxes plus false positives."""
    rng = np.random.default_rng(7)
    images, annotations, detections = [], [], []
    for image_id in (1, 2, 3):
        images.append({"id": image_id, "height": 120, "width": 160})
        for k in range(4):
            x, y = rng.uniform(0, 100, size=2)
            w, h = rng.uniform(10, 50, size=2)
            category = 1 + k % 2
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            shift = rng.uniform(-6, 6, size=2)
            detections.append({"image_id": image_id, "category_id": category,
                               "bbox": [x + shift[0], y + shift[1], w, h], "score": float(rng.uniform(0.3, 1))})
        detections.append({"image_id": image_id, "category_id": 1, "bbox": [5.0, 5.0, 20.0, 20.0], "score": 0.9})
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def _coco_stats(evaluator_class, tmp_path) -> np.ndarray:
    from pycocotools.coco import COCO

    ground_truth, detections = _coco_fixture()
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        evaluator = evaluator_class(coco, coco.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def test_fast_coco_eval_gives_pycocotools_numbers(tmp_path):
    from detectron2.evaluation.fast_eval_api import COCOeval_opt
    from pycocotools.cocoeval import COCOeval

    assert COCOeval_opt is not COCOeval  # the C++ evaluator, not the fallback alias
    expected = _coco_stats(COCOeval, tmp_path)
    assert 0.2 < expected[0] < 0.95  # a fixture with an AP that is neither trivial nor perfect
    assert np.allclose(_coco_stats(COCOeval_opt, tmp_path), expected, atol=1e-9)
