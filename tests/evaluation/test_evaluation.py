"""COCO evaluation (swin_scratch.evaluation): correctness anchors, clear input errors, identical backends,
reports, and the detectron2 evaluator the trainer uses."""
from __future__ import annotations

import copy
import json
import math
import sys

import numpy as np
import pytest

from swin_scratch.benchmark.coco_eval import max_summary_difference
from swin_scratch.coco.synthetic import jittered_detections, make_synthetic_coco
from swin_scratch.evaluation import (
    SUMMARY_NAMES,
    EvaluationInputError,
    evaluate_coco_results,
    find_results_file,
    format_summary,
    write_report,
)


def _box_annotation(ann_id: int, image_id: int, category_id: int, x: float, y: float, w: float, h: float) -> dict:
    polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h],
            "area": w * h, "iscrowd": 0, "segmentation": [polygon]}


def _small_gt() -> dict:
    """3 images, 2 categories, objects of all three COCO sizes (small < 32², medium < 96², large)."""
    boxes = [(1, 1, 10, 10, 20, 20), (1, 2, 40, 40, 60, 50), (2, 1, 5, 5, 150, 120),
             (2, 2, 200, 10, 25, 25), (3, 2, 30, 60, 110, 100)]
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "height": 240, "width": 320} for i in (1, 2, 3)],
        "annotations": [_box_annotation(k + 1, *b) for k, b in enumerate(boxes)],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }


def _perfect_results(gt: dict, masks: bool = False) -> list[dict]:
    import pycocotools.mask as mask_util

    images = {image["id"]: image for image in gt["images"]}
    results = []
    for ann in gt["annotations"]:
        det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": list(ann["bbox"]), "score": 1.0}
        if masks:
            image = images[ann["image_id"]]
            rle = mask_util.merge(mask_util.frPyObjects(ann["segmentation"], image["height"], image["width"]))
            det["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        results.append(det)
    return results


# --- correctness anchors -------------------------------------------------------------------------


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_perfect_results_score_ap_100(iou_type):
    gt = _small_gt()
    result = evaluate_coco_results(gt, _perfect_results(gt, masks=True), [iou_type])[iou_type]
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR10", "AR100", "ARs", "ARm", "ARl"):
        assert result.summary[name] == pytest.approx(100.0, abs=1e-9), name
    assert [row.ap for row in result.per_category] == pytest.approx([100.0, 100.0])


def test_hand_computed_ap_for_one_true_positive_and_one_false_positive():
    # One image, one category, two 10x10 ground-truth boxes A and B (area 100: "small").
    #   d1 (score 0.9) covers A's top 10x6.25: IoU = 62.5 / 100 = 0.625 (kept off the 0.60/0.65
    #       thresholds so no floating-point tie decides the match)
    #   d2 (score 0.8) overlaps nothing: a false positive. B is never found.
    # IoU thresholds t = 0.50, 0.55, ..., 0.95 (10). Ranked by score, with 2 ground truths:
    #   t <= 0.60 (3 thresholds): d1 TP, d2 FP → recall [0.5, 0.5], precision [1, 0.5]; the envelope
    #       gives precision 1 at the 101 recall points 0.00..0.50 (51 of them) and 0 above:
    #       AP_t = 51/101.
    #   t >= 0.65 (7 thresholds): both FP → AP_t = 0.
    # AP = (3 * 51/101 + 7 * 0) / 10 = 153/1010 = 15.1485...%;  AP50 = 51/101 = 50.495%;  AP75 = 0.
    # Recall is 0.5 at 3 thresholds and 0 at 7 → AR = 0.15 for 1, 10 and 100 detections (d1 ranks first).
    # Everything is "small": APs = AP, ARs = AR; medium/large have no ground truth → NaN (COCO's -1).
    gt = {
        "images": [{"id": 7, "file_name": "7.png", "height": 100, "width": 100}],
        "annotations": [_box_annotation(1, 7, 1, 0, 0, 10, 10), _box_annotation(2, 7, 1, 50, 50, 10, 10)],
        "categories": [{"id": 1, "name": "thing"}],
    }
    results = [
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 6.25], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [80, 80, 10, 10], "score": 0.8},
    ]
    expected = {"AP": 100 * 153 / 1010, "AP50": 100 * 51 / 101, "AP75": 0.0, "APs": 100 * 153 / 1010,
                "AR1": 15.0, "AR10": 15.0, "AR100": 15.0, "ARs": 15.0}
    for backend in ("pycocotools", "faster"):
        result = evaluate_coco_results(gt, results, ["bbox"], backend=backend)["bbox"]
        for name, value in expected.items():
            assert result.summary[name] == pytest.approx(value, rel=1e-12, abs=1e-12), (backend, name)
        assert all(math.isnan(result.summary[name]) for name in ("APm", "APl", "ARm", "ARl"))
        (row,) = result.per_category
        assert (row.ap, row.ap50, row.ap75) == pytest.approx((expected["AP"], expected["AP50"], 0.0), rel=1e-12)
        assert (row.num_gt, row.num_detections) == (2, 2)


def test_overall_ap_is_the_mean_of_per_category_ap():
    gt = make_synthetic_coco(num_images=30, num_categories=6, seed=1)
    result = evaluate_coco_results(gt, jittered_detections(gt, seed=1, with_masks=False), ["bbox"])["bbox"]
    per_category = [row.ap for row in result.per_category if not math.isnan(row.ap)]
    assert np.mean(per_category) == pytest.approx(result.summary["AP"], rel=1e-9)
    assert [row.ap for row in result.per_category] == sorted(per_category)  # worst first


# --- clear errors for user mistakes -------------------------------------------------------------


def test_result_for_an_image_not_in_the_ground_truth_names_the_id(tmp_path):
    gt = _small_gt()
    results = _perfect_results(gt)
    results[3]["image_id"] = 999
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(EvaluationInputError, match=r"image_id 999 \(detection 3") as err:
        evaluate_coco_results(gt, path)
    assert "results.json" in str(err.value)


def test_result_with_an_unknown_category_names_the_id():
    gt = _small_gt()
    results = _perfect_results(gt)
    results[1]["category_id"] = 0
    with pytest.raises(EvaluationInputError, match=r"category_id 0 \(detection 1\).*ids: 1, 2.*contiguous"):
        evaluate_coco_results(gt, results)


def test_empty_results_give_a_clear_message_instead_of_a_pycocotools_crash():
    with pytest.raises(EvaluationInputError, match="empty list: there are no detections"):
        evaluate_coco_results(_small_gt(), [], ["bbox"])


def test_segm_requested_for_results_without_masks_says_to_evaluate_bbox():
    gt = _small_gt()
    with pytest.raises(EvaluationInputError, match="detection 0 has no 'segmentation'.*--iou-type bbox"):
        evaluate_coco_results(gt, _perfect_results(gt, masks=False), ["bbox", "segm"])


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("{not json", r"not valid JSON \(line 1, column 2"),
        (json.dumps({"images": [], "categories": []}), "no 'annotations'"),
        (json.dumps({"annotations": []}), "missing key\\(s\\) 'images', 'categories'"),
        (json.dumps([{"image_id": 1}]), "looks like a results file"),
    ],
)
def test_unusable_ground_truth_file_gives_a_clear_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "gt.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(EvaluationInputError, match=message) as err:
        evaluate_coco_results(path, _perfect_results(_small_gt()))
    assert str(path) in str(err.value)


def test_ground_truth_annotation_without_area_is_named():
    gt = _small_gt()
    del gt["annotations"][2]["area"]
    with pytest.raises(EvaluationInputError, match="annotation id 3 has no 'area'"):
        evaluate_coco_results(gt, _perfect_results(gt))


def test_faster_backend_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # makes `import faster_coco_eval` fail
    with pytest.raises(EvaluationInputError, match="pip install faster-coco-eval"):
        evaluate_coco_results(_small_gt(), _perfect_results(_small_gt()), backend="faster")


# --- backends ------------------------------------------------------------------------------------


def test_pycocotools_and_faster_coco_eval_give_identical_numbers():
    # faster-coco-eval computes precision as tp/(tp+fp), pycocotools as tp/(tp+fp+eps): single entries
    # of the precision array differ by one ulp (1.0 vs 0.9999999999999998), so averages may differ in
    # the last bits (~1e-14 on the 0-100 scale). Anything beyond 1e-12 would be a real disagreement.
    gt = make_synthetic_coco(num_images=60, num_categories=8, seed=3)
    detections = jittered_detections(gt, seed=3)
    reference = evaluate_coco_results(gt, detections, ["bbox", "segm"], backend="pycocotools")
    faster = evaluate_coco_results(gt, detections, ["bbox", "segm"], backend="faster")
    for iou_type in ("bbox", "segm"):
        a, b = reference[iou_type], faster[iou_type]
        assert max_summary_difference(a, b) <= 1e-12, iou_type
        assert format_summary(a) == format_summary(b)  # the printed 12 lines are the same text
        assert [row.category_id for row in a.per_category] == [row.category_id for row in b.per_category]
        for row_a, row_b in zip(a.per_category, b.per_category):
            assert (row_a.ap, row_a.ap50, row_a.ap75) == pytest.approx((row_b.ap, row_b.ap50, row_b.ap75), abs=1e-12)
        assert 20.0 < a.summary["AP"] < 80.0  # a non-trivial case, not all-perfect or all-zero


def test_evaluation_leaves_the_callers_results_and_ground_truth_unchanged():
    # Both libraries' loadRes write area/id (and a box polygon as "segmentation") into detections;
    # leaked into a later segm evaluation, that polygon would be scored instead of the mask.
    gt = _small_gt()
    box_results, mask_results = _perfect_results(gt, masks=False), _perfect_results(gt, masks=True)
    before = copy.deepcopy((gt, box_results, mask_results))
    for backend in ("pycocotools", "faster"):
        evaluate_coco_results(gt, box_results, ["bbox"], backend=backend)
        evaluate_coco_results(gt, mask_results, ["bbox", "segm"], backend=backend)
    assert (gt, box_results, mask_results) == before


def test_reuses_a_pycocotools_coco_object_as_ground_truth():
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = _small_gt()
    coco.createIndex()
    result = evaluate_coco_results(coco, _perfect_results(_small_gt()), ["bbox"])["bbox"]
    assert result.summary["AP"] == pytest.approx(100.0)


# --- report --------------------------------------------------------------------------------------


def test_report_writes_json_csv_and_png_files(tmp_path):
    gt = _small_gt()
    evaluated = evaluate_coco_results(gt, _perfect_results(gt, masks=True))
    written = write_report(evaluated, tmp_path / "report", worst_n=2)
    names = sorted(p.name for p in written)
    assert names == sorted([
        "coco_eval.json", "coco_eval_summary.csv", "per_category_bbox.csv", "per_category_segm.csv",
        "pr_curves_bbox.png", "pr_curves_segm.png", "per_category_ap_bbox.png", "per_category_ap_segm.png",
    ])
    report = json.loads((tmp_path / "report" / "coco_eval.json").read_text())
    assert list(report["bbox"]["summary"]) == list(SUMMARY_NAMES)
    assert report["segm"]["per_category"][0]["name"] in {"cat", "dog"}
    assert len((tmp_path / "report" / "per_category_bbox.csv").read_text().strip().splitlines()) == 1 + 2
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_undefined_metrics_are_null_in_json_and_empty_in_csv(tmp_path):
    gt = _small_gt()
    gt["annotations"] = [a for a in gt["annotations"] if a["area"] < 32 ** 2]  # small objects only
    results = [r for r in _perfect_results(_small_gt()) if r["bbox"][2] * r["bbox"][3] < 32 ** 2]
    write_report(evaluate_coco_results(gt, results, ["bbox"]), tmp_path, plots=False)
    summary = json.loads((tmp_path / "coco_eval.json").read_text())["bbox"]["summary"]
    assert summary["APl"] is None and summary["APs"] == pytest.approx(100.0)
    header, row = (tmp_path / "coco_eval_summary.csv").read_text().strip().splitlines()
    assert dict(zip(header.split(","), row.split(",")))["APl"] == ""


# --- detectron2 output layout and evaluator ------------------------------------------------------


def test_finds_results_in_a_detectron2_output_directory(tmp_path):
    nested = tmp_path / "inference" / "my_val"
    nested.mkdir(parents=True)
    (nested / "coco_instances_results.json").write_text("[]")
    assert find_results_file(tmp_path) == (nested / "coco_instances_results.json", "my_val")
    (tmp_path / "inference" / "other_val").mkdir()
    (tmp_path / "inference" / "other_val" / "coco_instances_results.json").write_text("[]")
    with pytest.raises(EvaluationInputError, match="several datasets .*--dataset"):
        find_results_file(tmp_path)
    assert find_results_file(tmp_path, "other_val")[1] == "other_val"
    (tmp_path / "nothing_here").mkdir()
    with pytest.raises(EvaluationInputError, match="no coco_instances_results.json"):
        find_results_file(tmp_path / "nothing_here")


def _register_tiny_dataset(root, name: str) -> None:
    """Two 64x80 images, categories with non-contiguous ids 3 and 7 (detectron2 maps them to 0, 1)."""
    from detectron2.data.datasets import register_coco_instances
    from PIL import Image

    images, annotations = [], []
    for image_id in (1, 2):
        Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(root / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 64, "width": 80})
        for k, (category_id, box) in enumerate([(3, (5, 5, 20, 30)), (7, (40, 10, 30, 25))]):
            annotations.append(_box_annotation(image_id * 10 + k, image_id, category_id, *box))
    categories = [{"id": 3, "name": "square"}, {"id": 7, "name": "circle"}]
    (root / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    register_coco_instances(name, {}, str(root / "gt.json"), str(root))


def _outputs_equal_to_ground_truth(dataset_dicts):
    import torch
    from detectron2.structures import Boxes, BoxMode, Instances
    from detectron2.structures.masks import polygons_to_bitmask

    outputs = []
    for record in dataset_dicts:
        height, width = record["height"], record["width"]
        instances = Instances((height, width))
        annotations = record["annotations"]
        instances.pred_boxes = Boxes(torch.tensor(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations], dtype=torch.float32))
        instances.scores = torch.linspace(1.0, 0.5, len(annotations))
        instances.pred_classes = torch.tensor([a["category_id"] for a in annotations])  # contiguous ids
        instances.pred_masks = torch.stack(
            [torch.from_numpy(polygons_to_bitmask(a["segmentation"], height, width)) for a in annotations])
        outputs.append({"instances": instances})
    return outputs


def test_swin_coco_evaluator_scores_ground_truth_outputs_100_and_writes_the_report(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from swin_scratch.detection.evaluator import SwinCOCOEvaluator

    name = f"swin_eval_tiny_{tmp_path.name}"
    _register_tiny_dataset(tmp_path, name)
    try:
        dataset = DatasetCatalog.get(name)
        evaluator = SwinCOCOEvaluator(name, distributed=False, output_dir=str(tmp_path / "out"), worst_n=2)
        evaluator.reset()
        evaluator.process([{"image_id": r["image_id"]} for r in dataset], _outputs_equal_to_ground_truth(dataset))
        results = evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)

    assert set(results) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        assert set(results[task]) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-square", "AP-circle"}
        assert results[task]["AP"] == pytest.approx(100.0)
        assert results[task]["AP-square"] == pytest.approx(100.0)
        assert results[task]["AP-circle"] == pytest.approx(100.0)
    out = tmp_path / "out"
    saved = json.loads((out / "coco_instances_results.json").read_text())
    assert {det["category_id"] for det in saved} == {3, 7}  # mapped back to the dataset's ids
    assert {p.name for p in evaluator.report_files} >= {"coco_eval.json", "per_category_segm.csv", "pr_curves_bbox.png"}


def test_swin_coco_evaluator_without_predictions_reports_nan_instead_of_crashing(tmp_path):
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import Boxes, Instances

    from swin_scratch.detection.evaluator import SwinCOCOEvaluator

    name = f"swin_eval_empty_{tmp_path.name}"
    _register_tiny_dataset(tmp_path, name)
    try:
        evaluator = SwinCOCOEvaluator(name, tasks=("bbox",), distributed=False, output_dir=str(tmp_path / "out"))
        evaluator.reset()
        empty = Instances((64, 80), pred_boxes=Boxes(torch.zeros(0, 4)), scores=torch.zeros(0),
                          pred_classes=torch.zeros(0, dtype=torch.long))
        evaluator.process([{"image_id": 1}], [{"instances": empty}])
        results = evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert math.isnan(results["bbox"]["AP"])
