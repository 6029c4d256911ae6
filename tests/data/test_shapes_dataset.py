"""The built-in shapes dataset: deterministic, valid COCO, visible-part masks, registration, idempotent writes."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from helpers.shapes import load_tool
from swin_scratch.data import ShapesConfig, ShapesDatasetError, generate_shapes_dataset, mask_to_polygons
from swin_scratch.data.shapes import annotation_path, draw_image, image_rng

SMALL = ShapesConfig(seed=5, num_train=24, num_val=6)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", SMALL, progress=False).root


@pytest.fixture(scope="module")
def coco_train(dataset) -> COCO:
    return COCO(str(annotation_path(dataset, "train")))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _polygon_mask(annotation: dict, height: int, width: int) -> np.ndarray:
    rles = mask_util.frPyObjects(annotation["segmentation"], height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def test_same_seed_gives_byte_identical_images_and_json(tmp_path):
    config = ShapesConfig(seed=11, num_train=5, num_val=2)
    first = generate_shapes_dataset(tmp_path / "a", config, progress=False).root
    second = generate_shapes_dataset(tmp_path / "b", config, progress=False).root
    other_seed = generate_shapes_dataset(tmp_path / "c", ShapesConfig(seed=12, num_train=5, num_val=2),
                                         progress=False).root

    assert _files(first) == _files(second)
    assert len(_files(first)) == 5 + 2 + 2 + 1  # PNGs, two JSONs, manifest
    assert _files(first)["annotations/instances_train.json"] != _files(other_seed)["annotations/instances_train.json"]


def test_image_does_not_depend_on_split_sizes(tmp_path):
    small = generate_shapes_dataset(tmp_path / "a", ShapesConfig(seed=3, num_train=2, num_val=1), progress=False)
    large = generate_shapes_dataset(tmp_path / "b", ShapesConfig(seed=3, num_train=4, num_val=1), progress=False)
    assert (small.root / "train/000001.png").read_bytes() == (large.root / "train/000001.png").read_bytes()


def test_annotations_are_valid_coco_with_categories_from_one(dataset, coco_train):
    raw = json.loads(annotation_path(dataset, "train").read_text())
    assert [c["id"] for c in raw["categories"]] == [1, 2, 3, 4]
    assert [c["name"] for c in raw["categories"]] == ["circle", "square", "triangle", "star"]
    assert len(coco_train.getImgIds()) == SMALL.num_train
    assert len(COCO(str(annotation_path(dataset, "val"))).getImgIds()) == SMALL.num_val
    annotations = coco_train.loadAnns(coco_train.getAnnIds())
    assert len(annotations) >= SMALL.num_train  # at least one object per image
    assert {a["iscrowd"] for a in annotations} == {0}
    assert {a["category_id"] for a in annotations} == {1, 2, 3, 4}
    assert len({a["id"] for a in annotations}) == len(annotations)
    for image in coco_train.loadImgs(coco_train.getImgIds()):
        assert (dataset / "train" / image["file_name"]).is_file()
        assert (image["width"], image["height"]) == (SMALL.image_size, SMALL.image_size)


def test_every_polygon_has_at_least_three_points(coco_train):
    for annotation in coco_train.loadAnns(coco_train.getAnnIds()):
        assert annotation["segmentation"], annotation["id"]
        for polygon in annotation["segmentation"]:
            assert len(polygon) % 2 == 0 and len(polygon) >= 6


def test_bboxes_lie_inside_the_image_and_enclose_the_polygons(coco_train):
    size = SMALL.image_size
    for annotation in coco_train.loadAnns(coco_train.getAnnIds()):
        x, y, w, h = annotation["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= size and y + h <= size
        points = np.concatenate([np.reshape(p, (-1, 2)) for p in annotation["segmentation"]])
        assert points[:, 0].min() >= x - 0.5 and points[:, 0].max() <= x + w + 0.5
        assert points[:, 1].min() >= y - 0.5 and points[:, 1].max() <= y + h + 0.5


def test_polygon_area_matches_the_annotated_visible_area(coco_train):
    for annotation in coco_train.loadAnns(coco_train.getAnnIds()):
        polygon_area = _polygon_mask(annotation, SMALL.image_size, SMALL.image_size).sum()
        assert polygon_area == pytest.approx(annotation["area"], rel=0.05), annotation["id"]


def test_occluded_objects_are_annotated_by_their_visible_part_only(coco_train):
    """Some objects overlap (their boxes intersect) yet their polygons (visible parts) hardly do."""
    size = SMALL.image_size
    overlapping_pairs = 0
    for image_id in coco_train.getImgIds():
        annotations = coco_train.loadAnns(coco_train.getAnnIds(imgIds=image_id))
        for a, b in itertools.combinations(annotations, 2):
            ax, ay, aw, ah = a["bbox"]
            bx, by, bw, bh = b["bbox"]
            box_overlap = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
            if box_overlap == 0:
                continue
            overlapping_pairs += 1
            shared = (_polygon_mask(a, size, size) & _polygon_mask(b, size, size)).sum()
            assert shared <= 0.05 * min(a["area"], b["area"]) + 10, (image_id, a["id"], b["id"])
    assert overlapping_pairs >= 3


def test_visible_mask_is_the_full_mask_minus_objects_painted_later():
    for index in range(10):
        _, objects = draw_image(image_rng(0, "train", index), ShapesConfig())
        for position, obj in enumerate(objects):
            later = np.zeros_like(obj.full_mask)
            for other in objects[position + 1:]:
                later |= other.full_mask
            np.testing.assert_array_equal(obj.visible_mask, obj.full_mask & ~later)
            assert obj.visible_mask.sum() >= ShapesConfig().min_visible_frac * obj.full_mask.sum()


def test_mask_to_polygons_round_trips_a_notched_square_with_two_pieces():
    mask = np.zeros((64, 64), bool)
    mask[10:40, 10:40] = True
    mask[20:30, 25:40] = False  # a notch: concave boundary
    mask[50:60, 5:15] = True  # a second piece
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2
    decoded = mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, 64, 64))).astype(bool)
    assert (decoded & mask).sum() / (decoded | mask).sum() > 0.97


def test_registered_shapes_val_returns_dicts_with_annotations(dataset):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from swin_scratch.detection.datasets import register_shapes_datasets

    assert register_shapes_datasets(dataset) == ["shapes_train", "shapes_val"]
    register_shapes_datasets(dataset)  # again: no "already registered" error
    dicts = DatasetCatalog.get("shapes_val")
    assert len(dicts) == SMALL.num_val
    assert all(d["annotations"] for d in dicts)
    assert {a["category_id"] for d in dicts for a in d["annotations"]} <= {0, 1, 2, 3}  # contiguous ids
    assert MetadataCatalog.get("shapes_val").thing_classes == ["circle", "square", "triangle", "star"]
    assert MetadataCatalog.get("shapes_val").json_file == str(annotation_path(dataset, "val"))


def test_registering_another_root_repoints_the_names(dataset, tmp_path):
    from detectron2.data import MetadataCatalog

    from swin_scratch.detection.datasets import register_shapes_datasets

    register_shapes_datasets(tmp_path / "elsewhere")
    assert MetadataCatalog.get("shapes_train").image_root == str(tmp_path / "elsewhere" / "train")
    register_shapes_datasets(dataset)
    assert MetadataCatalog.get("shapes_train").image_root == str(dataset / "train")


def test_default_root_follows_detectron2_datasets(monkeypatch, tmp_path):
    from swin_scratch.data import default_shapes_root

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert default_shapes_root() == tmp_path / "shapes"
    monkeypatch.delenv("DETECTRON2_DATASETS")
    assert default_shapes_root() == Path("datasets") / "shapes"


def test_complete_dataset_is_kept_and_force_or_new_parameters_regenerate(tmp_path):
    config = ShapesConfig(seed=1, num_train=3, num_val=1)
    root = tmp_path / "shapes"
    assert generate_shapes_dataset(root, config, progress=False).generated
    marker = root / "train" / "000000.png"
    stamp = marker.stat().st_mtime_ns

    kept = generate_shapes_dataset(root, config, progress=False)
    assert not kept.generated and kept.num_images == {"train": 3, "val": 1}
    assert marker.stat().st_mtime_ns == stamp

    assert generate_shapes_dataset(root, config, force=True, progress=False).generated
    bigger = generate_shapes_dataset(root, ShapesConfig(seed=1, num_train=4, num_val=1), progress=False)
    assert bigger.generated and len(list((root / "train").glob("*.png"))) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left behind


def test_incomplete_dataset_is_regenerated(tmp_path):
    config = ShapesConfig(seed=1, num_train=3, num_val=1)
    root = generate_shapes_dataset(tmp_path / "shapes", config, progress=False).root
    (root / "train" / "000002.png").unlink()
    assert generate_shapes_dataset(root, config, progress=False).generated
    assert (root / "train" / "000002.png").is_file()


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ShapesDatasetError, match="refusing"):
        generate_shapes_dataset(tmp_path, ShapesConfig(num_train=1, num_val=1), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_tool_reports_where_it_wrote_then_keeps_the_dataset(tmp_path, capsys):
    tool = load_tool("make_shapes_dataset")
    args = ["--root", str(tmp_path / "shapes"), "--num-train", "3", "--num-val", "2", "--seed", "4", "--quiet"]
    assert tool.main(args) == 0
    out = capsys.readouterr().out
    assert f"generated: {tmp_path / 'shapes'}" in out and "train: 3 images" in out and "val: 2 images" in out

    assert tool.main(args) == 0
    assert "already complete" in capsys.readouterr().out
    assert tool.main(args + ["--force"]) == 0
    assert "generated" in capsys.readouterr().out
    assert tool.main(["--root", str(tmp_path / "x"), "--image-size", "8"]) == 2
    assert "image_size" in capsys.readouterr().err


def test_tool_preview_writes_a_small_png_grid(tmp_path, capsys):
    from PIL import Image

    tool = load_tool("make_shapes_dataset")
    preview = tmp_path / "preview.png"
    args = ["--root", str(tmp_path / "shapes"), "--num-train", "4", "--num-val", "1", "--quiet",
            "--preview", str(preview)]
    assert tool.main(args) == 0
    assert str(preview) in capsys.readouterr().out
    with Image.open(preview) as image:
        width, height = image.size
    assert width > 500 and height > 500  # 2x2 tiles of 160 px drawn at scale 2
    assert preview.stat().st_size < 150_000
