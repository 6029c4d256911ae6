"""Bad input gets one clear message (naming the file/key), or is skipped with a counted warning."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import BoxMode
from PIL import Image

from helpers.own_data import write_own_dataset
from helpers.shapes import REPO, TINY_TRAINING_OVERRIDES, load_tool
from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.detection.dataset_checks import (
    DatasetFormatError,
    DatasetNotFoundError,
    SafeDatasetMapper,
    check_datasets_available,
    clean_annotations,
)
from swin_scratch.weights.files import CheckpointError


def _coco(tmp_path, images=1, mode="RGB"):
    entries, annotations = [], []
    for i in range(images):
        color = 120 if mode == "L" else (120, 30, 200, 255)[: len(mode)]
        Image.new(mode, (64, 48), color=color).save(tmp_path / f"{i}.png")
        entries.append({"id": i + 1, "file_name": f"{i}.png", "height": 48, "width": 64})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400,
                            "iscrowd": 0, "segmentation": [[5, 5, 25, 5, 25, 25, 5, 25]]})
    return {"images": entries, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}


def _register(tmp_path, content, name):
    path = tmp_path / "ann.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    register_coco_instances(name, {}, str(path), str(tmp_path))
    return path


@pytest.fixture
def dataset_name(request):
    name = f"bad_input_{request.node.name}"
    yield name
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


@pytest.mark.parametrize(
    "case,content,error,pattern",
    [
        ("missing json", None, DatasetNotFoundError, r"ann\.json"),
        ("malformed json", '{"images": [', DatasetFormatError, r"ann\.json.*not valid JSON"),
        ("not coco", '{"hello": 1}', DatasetFormatError, r"ann\.json.*missing key"),
    ],
)
def test_broken_dataset_json_stops_with_one_message(tmp_path, dataset_name, case, content, error, pattern):
    path = _register(tmp_path, content or "{}", dataset_name)
    if content is None:
        path.unlink()
    with pytest.raises(error, match=pattern):
        check_datasets_available([dataset_name])


def test_annotation_pointing_at_a_missing_image_names_it(tmp_path, dataset_name):
    data = _coco(tmp_path)
    data["images"][0]["file_name"] = "gone.png"
    _register(tmp_path, data, dataset_name)
    with pytest.raises(DatasetNotFoundError, match=r"image id 1 points at .*gone\.png"):
        check_datasets_available([dataset_name])


def test_unregistered_dataset_is_named(dataset_name):
    with pytest.raises(DatasetNotFoundError, match="not registered"):
        check_datasets_available([dataset_name])


def test_invalid_annotations_are_dropped_and_counted():
    def ann(bbox, segmentation):
        return {"bbox": bbox, "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "segmentation": segmentation}

    good = [[1, 1, 9, 1, 9, 9]]
    record = {"height": 50, "width": 50, "annotations": [
        ann([1, 1, 10, 10], good),
        ann([1, 1, 0, 10], good),  # zero area
        ann([60, 60, 5, 5], good),  # outside the image
        ann([1, 1, 10, 10], [[1, 1, 9, 1]]),  # a 2-point polygon
        ann([1, 1, 10, 10], [[1, 1, 9, 1], [1, 1, 9, 1, 9, 9]]),  # one bad polygon of two
    ]}
    cleaned, dropped = clean_annotations(record)
    assert len(cleaned["annotations"]) == 2
    assert dropped == {"zero-area box": 1, "box outside the image": 1, "polygon with fewer than 3 points": 2}


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grayscale_and_rgba_images_are_converted(tmp_path, mode):
    data = _coco(tmp_path, mode=mode)
    cfg = get_swin_cfg("swin_shapes.yaml", ["INPUT.MIN_SIZE_TRAIN", "(48,)"])
    mapper = SafeDatasetMapper(cfg, is_train=True)
    record = {**data["images"][0], "file_name": str(tmp_path / "0.png"), "image_id": 1,
              "annotations": [{"bbox": [5, 5, 20, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
                               "segmentation": [[5, 5, 25, 5, 25, 25, 5, 25]]}]}
    out = mapper(record)
    assert out["image"].shape[0] == 3


def test_unreadable_image_is_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / "broken.png").write_text("not an image")
    cfg = get_swin_cfg("swin_shapes.yaml")
    mapper = SafeDatasetMapper(cfg, is_train=True)
    record = {"file_name": str(tmp_path / "broken.png"), "height": 10, "width": 10, "image_id": 1, "annotations": []}
    with caplog.at_level(logging.WARNING, logger="swin_scratch"):
        assert mapper(record) is None
    assert "broken.png" in caplog.text and mapper.dropped["unreadable image"] == 1


def test_image_smaller_than_the_patch_size_runs(tmp_path):
    from detectron2.modeling import build_model

    cfg = get_swin_cfg("swin_shapes.yaml", TINY_TRAINING_OVERRIDES[:12])
    model = build_model(cfg).eval()
    with torch.no_grad():
        (out,) = model([{"image": torch.randint(0, 255, (3, 3, 2), dtype=torch.uint8), "height": 3, "width": 2}])
    assert out["instances"].image_size == (3, 2)


def _tiny_model(**swin):
    from detectron2.modeling import build_model

    overrides = list(TINY_TRAINING_OVERRIDES[:12])
    for key, value in swin.items():
        overrides += [f"MODEL.SWIN.{key}", str(value)]
    return build_model(get_swin_cfg("swin_shapes.yaml", overrides))


def test_checkpoint_of_another_window_size_is_resized(tmp_path):
    source = _tiny_model(WINDOW_SIZE=7)
    torch.save({"model": source.state_dict()}, tmp_path / "w7.pth")
    target = _tiny_model(WINDOW_SIZE=12)
    SwinCheckpointer(target).load(str(tmp_path / "w7.pth"))
    key = "backbone.bottom_up.swin.layers.0.blocks.0.attn.relative_position_bias_table"
    assert target.state_dict()[key].shape == (23 * 23, 1)


def test_checkpoint_of_another_variant_is_refused_with_key_and_shapes(tmp_path):
    torch.save({"model": _tiny_model(EMBED_DIM=24).state_dict()}, tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match=r"patch_embed\.proj\.weight.*\(24, 3, 4, 4\).*\(16, 3, 4, 4\)"):
        SwinCheckpointer(_tiny_model()).load(str(tmp_path / "wide.pth"))


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--config", "nope.yaml"], "config file not found: 'nope.yaml'"),
        (["--config", "swin_shapes.yaml", "MODEL.SWIN.NOPE", "1"], "MODEL.SWIN.NOPE"),
        (["--config", "swin_coco.yaml"], "DETECTRON2_DATASETS.*swin_shapes.yaml"),
        (["--config", "swin_shapes.yaml", "--eval-only", "DATASETS.SHAPES_ROOT", "/tmp/shapes_x",
          "MODEL.WEIGHTS", "/nonexistent/model.pth"], "shapes_val"),
    ],
)
def test_train_net_user_errors_are_one_line_without_traceback(args, pattern, tmp_path):
    # PYTHONPATH: this tree's package
    env = {"DETECTRON2_DATASETS": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(REPO / "tools/train_net.py"), *args], capture_output=True,
                            text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert re.search(pattern, error_lines[0]), error_lines[0]


@pytest.mark.parametrize(
    "damage,pattern",
    [
        ("remove the training JSON", r"DATASETS.TRAIN_JSON: annotation file .*fruit/train\.json does not exist"),
        ("truncate the test JSON", r"DATASETS.TEST_JSON: .*fruit/val\.json.*not valid JSON"),
        ("remove an image", r"points at .*part0.*does not exist.*--train-images"),
        ("break an annotation", r"annotation id 500 refers to image_id 123456"),
    ],
)
def test_own_coco_json_user_errors_are_one_line(tmp_path, monkeypatch, capsys, unregister_new_datasets, damage,
                                                pattern):

    train, val = write_own_dataset(tmp_path / "fruit")
    if damage == "remove the training JSON":
        train.unlink()
    elif damage == "truncate the test JSON":
        val.write_text(val.read_text()[:100])
    elif damage == "remove an image":
        next((tmp_path / "fruit/images/part0").glob("train_*.png")).unlink()
    else:
        data = json.loads(train.read_text())
        data["annotations"][0]["image_id"] = 123456
        train.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    args = ["--config", "swin_coco.yaml", "--train-json", "fruit/train.json", "--test-json", "fruit/val.json"]
    assert load_tool("train_net").main(args) == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and re.search(pattern, error_lines[0]), error_lines
