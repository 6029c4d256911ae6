"""detectron2 is real here: its stock Mask R-CNN trains and infers on CPU and its COCOEvaluator scores."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image


def _mask_rcnn_r50_cfg():
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    return cfg


def _one_instance(height: int, width: int):
    from detectron2.structures import BitMasks, Boxes, Instances

    instances = Instances((height, width))
    instances.gt_boxes = Boxes(torch.tensor([[10.0, 20.0, 100.0, 120.0]]))
    instances.gt_classes = torch.tensor([1])
    mask = torch.zeros(1, height, width, dtype=torch.bool)
    mask[0, 20:120, 10:100] = True
    instances.gt_masks = BitMasks(mask)
    return instances


@pytest.mark.slow
def test_model_zoo_mask_rcnn_r50_fpn_trains_one_step_and_infers_on_cpu():
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    model = build_model(_mask_rcnn_r50_cfg())
    image = torch.randint(0, 255, (3, 160, 192), dtype=torch.uint8)
    batch = [{"image": image, "instances": _one_instance(160, 192), "height": 160, "width": 192}]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train()
    with EventStorage(0):
        losses = model(batch)
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        (output,) = model([{"image": image, "height": 160, "width": 192}])
    instances = output["instances"]
    assert instances.image_size == (160, 192)
    assert {"pred_boxes", "scores", "pred_classes", "pred_masks"} <= set(instances.get_fields())


def _write_coco_fixture(root) -> str:
    images, annotations = [], []
    for image_id in (1, 2):
        Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(root / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 64, "width": 80})
        for k, (x, y, w, h) in enumerate([(5, 5, 20, 30), (40, 10, 30, 25)]):
            polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            annotations.append(
                {"id": image_id * 10 + k, "image_id": image_id, "category_id": k + 1, "bbox": [x, y, w, h],
                 "area": w * h, "iscrowd": 0, "segmentation": [polygon]}
            )
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    path = root / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return str(path)


def _predictions_from_gt(dataset_dicts, shift: float):
    from detectron2.structures import Boxes, BoxMode, Instances

    outputs = []
    for record in dataset_dicts:
        boxes = torch.tensor(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]]
        )
        boxes = boxes + torch.tensor([shift, shift, shift, shift])
        instances = Instances((record["height"], record["width"]))
        instances.pred_boxes = Boxes(boxes)
        instances.scores = torch.ones(len(boxes))
        instances.pred_classes = torch.tensor([a["category_id"] for a in record["annotations"]])
        outputs.append({"instances": instances})
    return outputs


def test_coco_evaluator_gives_100_ap_for_ground_truth_and_less_when_perturbed(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances
    from detectron2.evaluation import COCOEvaluator

    name = f"d2_real_fixture_{tmp_path.name}"
    register_coco_instances(name, {}, _write_coco_fixture(tmp_path), str(tmp_path))
    try:
        dataset = DatasetCatalog.get(name)

        def evaluate(shift):
            evaluator = COCOEvaluator(name, tasks=("bbox",), distributed=False, output_dir=str(tmp_path / f"o{shift}"))
            evaluator.reset()
            inputs = [{"image_id": record["image_id"]} for record in dataset]
            evaluator.process(inputs, _predictions_from_gt(copy.deepcopy(dataset), shift))
            return evaluator.evaluate()["bbox"]["AP"]

        assert evaluate(0.0) == pytest.approx(100.0)
        assert evaluate(6.0) < 90.0
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
