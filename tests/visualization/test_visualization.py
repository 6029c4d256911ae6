"""Pictures: predictions drawn per image with a JSON beside them (tools/demo.py), training curves
(tools/plot_metrics.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.shapes import load_tool
from swin_scratch.data import CLASS_NAMES, ShapesConfig, generate_shapes_dataset
from swin_scratch.visualization import MetricsFileError, plot_metrics
from swin_scratch.visualization.predictions import UnreadableImageError, predict_and_draw

R50_MASK_RCNN = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


@pytest.fixture(scope="module")
def shapes_images(tmp_path_factory) -> list[Path]:
    root = generate_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes",
                                   ShapesConfig(seed=2, num_train=2, num_val=0), progress=False).root
    return sorted((root / "train").glob("*.png"))


@pytest.fixture()
def unreadable_image(tmp_path) -> Path:
    path = tmp_path / "x.png"
    path.write_text("not an image\n")
    return path


class FixedPredictor:
    """A stand-in for DefaultPredictor: one circle and one low-scoring star on every image."""

    def __call__(self, image_bgr: np.ndarray) -> dict:
        from detectron2.structures import Boxes, Instances

        height, width = image_bgr.shape[:2]
        masks = torch.zeros(2, height, width, dtype=torch.bool)
        masks[0, 20:60, 30:70] = True
        masks[1, 80:100, 80:100] = True
        instances = Instances((height, width))
        instances.pred_boxes = Boxes(torch.tensor([[30.0, 20.0, 70.0, 60.0], [80.0, 80.0, 100.0, 100.0]]))
        instances.scores = torch.tensor([0.9, 0.2])
        instances.pred_classes = torch.tensor([0, 3])
        instances.pred_masks = masks
        return {"instances": instances}


def _shapes_metadata():
    from detectron2.data.catalog import Metadata

    return Metadata(name="test_shapes").set(thing_classes=list(CLASS_NAMES))


def test_predict_and_draw_writes_a_picture_and_a_json_per_image(shapes_images, tmp_path):
    written = predict_and_draw(FixedPredictor(), shapes_images, tmp_path / "out", _shapes_metadata(), 0.5)

    stems = [p.stem for p in shapes_images]
    assert written == [tmp_path / "out" / f"{s}_pred.{ext}" for s in stems for ext in ("png", "json")]
    with Image.open(written[0]) as picture:
        drawn = np.asarray(picture.convert("RGB"))
    original = np.asarray(Image.open(shapes_images[0]).convert("RGB"))
    assert drawn.shape[0] >= 480  # small images are drawn enlarged so labels are legible
    assert drawn.shape[0] / original.shape[0] == pytest.approx(drawn.shape[1] / original.shape[1])
    enlarged = np.asarray(Image.fromarray(original).resize(drawn.shape[1::-1], Image.NEAREST))
    assert np.abs(drawn.astype(int) - enlarged.astype(int)).sum(axis=2).astype(bool).mean() > 0.02  # something drawn


def test_prediction_json_has_boxes_scores_classes_and_masks_above_the_threshold(shapes_images, tmp_path):
    from pycocotools import mask as mask_util

    written = predict_and_draw(FixedPredictor(), shapes_images[:1], tmp_path, _shapes_metadata(), 0.5)
    record = json.loads(written[1].read_text())
    assert record["image"] == str(shapes_images[0])
    assert record["boxes"] == [[30.0, 20.0, 70.0, 60.0]]  # XYXY; the 0.2-score star is left out
    assert record["scores"] == [pytest.approx(0.9)]
    assert record["classes"] == [0] and record["class_names"] == ["circle"]
    assert mask_util.area(record["masks"][0]) == 40 * 40


def test_same_file_name_in_two_folders_gets_two_outputs(shapes_images, tmp_path):
    copy = tmp_path / "copy" / shapes_images[0].name
    copy.parent.mkdir()
    copy.write_bytes(shapes_images[0].read_bytes())
    written = predict_and_draw(FixedPredictor(), [shapes_images[0], copy], tmp_path / "out")
    assert len(set(written)) == 4


def test_unreadable_image_raises_an_error_naming_the_file_before_any_prediction(shapes_images, unreadable_image,
                                                                                 tmp_path):
    calls = []

    def predictor(image):
        calls.append(image)
        return FixedPredictor()(image)

    with pytest.raises(UnreadableImageError, match=str(unreadable_image)):
        predict_and_draw(predictor, [shapes_images[0], unreadable_image], tmp_path / "out")
    assert calls == []


def test_model_module_is_run_at_the_image_size(shapes_images, tmp_path):
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(R50_MASK_RCNN))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
                         "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.RESNETS.DEPTH", "18",
                         "MODEL.RESNETS.RES2_OUT_CHANNELS", "64"])
    written = predict_and_draw(build_model(cfg), shapes_images[:1], tmp_path, None, score_threshold=0.0)
    record = json.loads(written[1].read_text())
    assert (record["height"], record["width"]) == (160, 160)
    assert len(record["boxes"]) == len(record["scores"]) == len(record["classes"]) == len(record["masks"]) <= 3


def _r50_demo_args(shapes_images, weights: Path, output: Path) -> list[str]:
    from detectron2 import model_zoo

    return ["--config", model_zoo.get_config_file(R50_MASK_RCNN), "--weights", str(weights),
            "--input", *map(str, shapes_images), "--output", str(output), "--score-threshold", "0",
            "--opts", "MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
            "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128", "TEST.DETECTIONS_PER_IMAGE", "5"]


def test_demo_tool_runs_a_model_zoo_mask_rcnn_and_lists_its_outputs(shapes_images, tmp_path, capsys):
    from detectron2.data import MetadataCatalog

    weights = tmp_path / "random_init.pth"
    torch.save({"model": {}}, weights)  # no tensors: every weight keeps its random initialization
    assert load_tool("demo").main(_r50_demo_args(shapes_images, weights, tmp_path / "out")) == 0

    out = capsys.readouterr().out
    for image in shapes_images:
        for suffix in ("_pred.png", "_pred.json"):
            path = tmp_path / "out" / f"{image.stem}{suffix}"
            assert path.is_file() and str(path) in out
        record = json.loads((tmp_path / "out" / f"{image.stem}_pred.json").read_text())
        assert {"boxes", "scores", "classes", "class_names"} <= set(record)
        assert set(record["class_names"]) <= set(MetadataCatalog.get("coco_2017_val").thing_classes)


def test_demo_tool_prints_one_line_and_exits_2_for_an_unreadable_image(shapes_images, unreadable_image, tmp_path,
                                                                       capsys):
    weights = tmp_path / "w.pth"
    torch.save({"model": {}}, weights)
    args = _r50_demo_args([shapes_images[0], unreadable_image], weights, tmp_path / "out")
    assert load_tool("demo").main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read image") and str(unreadable_image) in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_demo_tool_names_missing_weights(shapes_images, tmp_path, capsys):
    args = _r50_demo_args(shapes_images, tmp_path / "missing.pth", tmp_path / "out")
    assert load_tool("demo").main(args) == 2
    assert f"weights not found: {tmp_path / 'missing.pth'}" in capsys.readouterr().err


TINY_DEMO_MODEL = [
    "MODEL.SWIN.EMBED_DIM", "16", "MODEL.SWIN.DEPTHS", "[1, 1, 1, 1]", "MODEL.SWIN.NUM_HEADS", "[1, 1, 2, 2]",
    "MODEL.FPN.OUT_CHANNELS", "16", "MODEL.ROI_BOX_HEAD.FC_DIM", "32", "MODEL.ROI_MASK_HEAD.CONV_DIM", "16",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "3",
]


def test_demo_tool_runs_the_make_demo_swin_model(shapes_images, tmp_path, capsys):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from swin_scratch.detection.config import get_swin_cfg

    tiny = TINY_DEMO_MODEL
    DetectionCheckpointer(build_model(get_swin_cfg("swin_shapes.yaml", tiny)), str(tmp_path)).save("model_final")
    args = ["--config", "swin_shapes.yaml", "--weights", str(tmp_path / "model_final.pth"),
            "--input", str(shapes_images[0].parent), "--output", str(tmp_path / "out"), "--score-threshold", "0",
            "--opts", *tiny]
    assert load_tool("demo").main(args) == 0
    record = json.loads((tmp_path / "out" / f"{shapes_images[0].stem}_pred.json").read_text())
    assert set(record["class_names"]) <= set(CLASS_NAMES)  # named by the shapes_val metadata


# ---------------------------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------------------------

def _write_metrics(path: Path, iterations: int = 40, eval_at: tuple[int, ...] = (19, 39)) -> Path:
    lines = []
    for it in range(iterations):
        loss_cls, loss_box = 1.0 / (1 + it * 0.1), 0.5 / (1 + it * 0.05)
        lines.append({"iteration": it, "total_loss": loss_cls + loss_box, "loss_cls": loss_cls,
                      "loss_box_reg": loss_box, "lr": 0.001 * min(1.0, (it + 1) / 10), "time": 0.2,
                      "data_time": 0.01})
        if it in eval_at:
            lines.append({"iteration": it, "bbox/AP": it * 1.5, "bbox/AP50": it * 2.0, "bbox/AP75": it,
                          "segm/AP": it * 1.2, "segm/AP50": it * 1.8, "segm/AP75": it * 0.9})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_plot_metrics_writes_loss_lr_and_ap_pictures(tmp_path):
    metrics = _write_metrics(tmp_path / "metrics.json")
    written = plot_metrics(metrics, tmp_path / "plots")
    assert [p.name for p in written] == ["losses.png", "lr.png", "eval_ap.png"]
    for path in written:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] >= 400 and image.size[1] >= 250
            assert len(np.unique(np.asarray(image.convert("L")))) > 10  # curves, axes and text, not a blank canvas
        assert path.stat().st_size > 10_000


def test_plot_metrics_without_evaluations_skips_the_ap_picture_and_ignores_a_half_written_last_line(tmp_path):
    metrics = _write_metrics(tmp_path / "metrics.json", eval_at=())
    with metrics.open("a") as file:
        file.write('{"iteration": 40, "total_lo')
    assert [p.name for p in plot_metrics(tmp_path, tmp_path / "plots")] == ["losses.png", "lr.png"]


def test_metric_series_of_a_resumed_run_is_sorted_and_the_later_line_wins():
    from swin_scratch.visualization import metric_series

    records = [{"iteration": 0, "lr": 1.0}, {"iteration": 10, "lr": 2.0}, {"iteration": 5, "lr": 3.0},
               {"iteration": 10, "lr": 4.0}, {"iteration": 12, "lr": float("nan")}, {"lr": 9.0}]
    assert metric_series(records, "lr") == ([0, 5, 10], [1.0, 3.0, 4.0])


@pytest.mark.parametrize("content", [None, "", "\n\n"])
def test_missing_or_empty_metrics_file_is_a_clear_error(tmp_path, content):
    metrics = tmp_path / "metrics.json"
    if content is not None:
        metrics.write_text(content)
    with pytest.raises(MetricsFileError, match=str(metrics)):
        plot_metrics(metrics, tmp_path / "plots")


def test_plot_metrics_tool_writes_into_the_run_folder_and_fails_cleanly_without_metrics(tmp_path, capsys):
    tool = load_tool("plot_metrics")
    _write_metrics(tmp_path / "metrics.json")
    assert tool.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(str(tmp_path / "plots" / name) in out for name in ("losses.png", "lr.png", "eval_ap.png"))

    assert tool.main([str(tmp_path / "empty_run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: metrics file not found") and err.count("\n") == 1


def test_make_demos_last_steps_find_the_data_where_detectron2_datasets_put_it(tmp_path, monkeypatch, capsys):
    """make demo's generate / predict steps with DETECTRON2_DATASETS set: the pictures come from there."""
    import subprocess
    import sys

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from helpers.tools import REPO
    from swin_scratch.detection.config import get_swin_cfg

    datasets = tmp_path / "my_datasets"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(datasets))
    subprocess.run([sys.executable, str(REPO / "tools/make_shapes_dataset.py"), "--num-train", "2", "--num-val", "3",
                    "--image-size", "96"], check=True, capture_output=True, cwd=tmp_path)
    assert len(list((datasets / "shapes" / "val").glob("*.png"))) == 3
    DetectionCheckpointer(build_model(get_swin_cfg("swin_shapes.yaml", TINY_DEMO_MODEL)), str(tmp_path)).save("m")
    demo_step = next(line for line in (REPO / "Makefile").read_text().splitlines() if "--dataset shapes_val" in line)
    assert "datasets/" not in demo_step  # the recipe names the dataset, not a folder
    args = ["--config", "swin_shapes.yaml", "--weights", str(tmp_path / "m.pth"), "--dataset", "shapes_val",
            "--limit", "2", "--output", str(tmp_path / "predictions"), "--opts", *TINY_DEMO_MODEL]
    monkeypatch.chdir(tmp_path)
    assert load_tool("demo").main(args) == 0
    assert len(list((tmp_path / "predictions").glob("*_pred.png"))) == 2
    assert "predictions for 2 image(s)" in capsys.readouterr().out

