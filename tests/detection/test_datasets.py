"""Own COCO-format files become detectron2 datasets from config keys alone (swin_scratch.detection.datasets)."""
from __future__ import annotations

import json
import shutil

import pytest
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.structures import BitMasks

from helpers.other_shapes import write_other_shapes
from helpers.own_data import CATEGORIES, CLASS_NAMES, TRAIN_IMAGE_IDS, write_own_dataset
from swin_scratch.coco.categories import dataset_name_for
from swin_scratch.detection.config import ConfigError, get_swin_cfg
from swin_scratch.detection.dataset_checks import DatasetFormatError, DatasetNotFoundError, check_datasets_available
from swin_scratch.detection.datasets import register_coco_json, use_coco_json_datasets


@pytest.fixture
def fruit(tmp_path, unregister_new_datasets):
    return write_own_dataset(tmp_path / "fruit")


def test_dataset_name_is_the_folder_and_file_stem():
    assert dataset_name_for("my/train.json") == "my_train"
    assert dataset_name_for("/data/My Data/instances-val.2017.json") == "My_Data_instances_val_2017"


def test_same_name_from_other_files_gets_a_suffix_and_the_same_files_keep_their_name(fruit, tmp_path):
    train, _ = fruit
    other = tmp_path / "elsewhere" / "fruit"
    shutil.copytree(train.parent, other)
    first = register_coco_json(str(train)).name
    second = register_coco_json(str(other / "train.json")).name
    assert (first, second) == ("fruit_train", "fruit_train_2")
    assert register_coco_json(str(train)).name == first


def test_builtin_dataset_names_are_never_taken_over(tmp_path, unregister_new_datasets):
    from swin_scratch.detection.datasets import register_shapes_datasets

    register_shapes_datasets(None)
    root = tmp_path / "shapes"
    root.mkdir()
    (root / "train.json").write_text(json.dumps({"images": [], "annotations": [], "categories": CATEGORIES}))
    dataset = register_coco_json(str(root / "train.json"))
    assert dataset.name == "shapes_train_2"
    assert MetadataCatalog.get("shapes_train").json_file != dataset.json_file


def test_non_contiguous_ids_odd_image_ids_sub_folders_and_empty_images_load(fruit):
    train, _ = fruit
    dataset = register_coco_json(str(train))
    metadata = MetadataCatalog.get(dataset.name)
    assert metadata.thing_classes == CLASS_NAMES
    assert metadata.thing_dataset_id_to_contiguous_id == {3: 0, 17: 1, 90: 2}
    records = DatasetCatalog.get(dataset.name)  # detectron2's own loader, with the metadata set above
    assert sorted(r["image_id"] for r in records) == sorted(TRAIN_IMAGE_IDS)
    assert all(r["file_name"].startswith(str(train.parent / "images" / "part")) for r in records)
    assert sum(1 for r in records if not r["annotations"]) == 2
    assert {a["category_id"] for r in records for a in r["annotations"]} == {0, 1, 2}


def test_config_keys_replace_the_datasets_and_num_classes(fruit, capsys):
    train, val = fruit
    cfg = get_swin_cfg("retinanet_swin_t_fpn_3x.yaml",
                       ["DATASETS.TRAIN_JSON", str(train), "DATASETS.TEST_JSON", str(val)])
    use_coco_json_datasets(cfg)
    assert (cfg.DATASETS.TRAIN, cfg.DATASETS.TEST) == (("fruit_train",), ("fruit_val",))
    assert cfg.MODEL.RETINANET.NUM_CLASSES == cfg.MODEL.ROI_HEADS.NUM_CLASSES == 3
    assert capsys.readouterr().err.startswith("notice: MODEL.RETINANET.NUM_CLASSES 80 -> 3")
    use_coco_json_datasets(cfg)  # as each worker process does: same names, nothing printed again
    assert cfg.DATASETS.TRAIN == ("fruit_train",) and capsys.readouterr().err == ""
    check_datasets_available(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST))


def test_images_folder_defaults_to_the_json_folder_and_can_be_given(fruit, tmp_path):
    train, _ = fruit
    moved = tmp_path / "annotations"
    moved.mkdir()
    shutil.move(str(train), moved / "train.json")
    cfg = get_swin_cfg("swin_coco.yaml", ["DATASETS.TRAIN_JSON", str(moved / "train.json")])
    use_coco_json_datasets(cfg)
    with pytest.raises(DatasetNotFoundError, match=r"--train-images"):
        check_datasets_available(list(cfg.DATASETS.TRAIN))
    cfg = get_swin_cfg("swin_coco.yaml", ["DATASETS.TRAIN_JSON", str(moved / "train.json"),
                                          "DATASETS.TRAIN_IMAGES", str(train.parent)])
    use_coco_json_datasets(cfg)
    check_datasets_available(list(cfg.DATASETS.TRAIN))


def test_training_json_without_a_test_json_trains_without_evaluation(fruit, capsys):
    train, _ = fruit
    cfg = get_swin_cfg("swin_coco.yaml", ["DATASETS.TRAIN_JSON", str(train)])
    use_coco_json_datasets(cfg)
    assert cfg.DATASETS.TEST == ()
    assert "without evaluation instead of evaluating on coco_2017_val" in capsys.readouterr().err


def test_test_json_with_other_categories_is_refused(fruit, tmp_path):
    train, val = fruit
    data = json.loads(val.read_text())
    data["categories"][0]["name"] = "lime"
    val.write_text(json.dumps(data))
    cfg = get_swin_cfg("swin_coco.yaml", ["DATASETS.TRAIN_JSON", str(train), "DATASETS.TEST_JSON", str(val)])
    with pytest.raises(DatasetFormatError, match=r"val\.json has categories .*lime.* same 'categories'"):
        use_coco_json_datasets(cfg)


@pytest.mark.parametrize(
    "content,error,pattern",
    [
        (None, DatasetNotFoundError, r"DATASETS.TRAIN_JSON: annotation file .*train\.json does not exist"),
        ('{"images": [', DatasetFormatError, r"DATASETS.TRAIN_JSON: .*train\.json.*not valid JSON"),
        ('{"images": [], "annotations": []}', DatasetFormatError, r"no 'categories' list"),
        ('{"categories": [{"id": "a", "name": "x"}]}', DatasetFormatError, r"categories\[0\] needs an integer 'id'"),
    ],
)
def test_unusable_json_is_one_error_naming_the_key_and_file(tmp_path, unregister_new_datasets, content, error, pattern):
    path = tmp_path / "train.json"
    if content is not None:
        path.write_text(content)
    cfg = get_swin_cfg("swin_coco.yaml", ["DATASETS.TRAIN_JSON", str(path)])
    with pytest.raises(error, match=pattern):
        use_coco_json_datasets(cfg)


def test_images_folder_without_json_is_a_config_error(tmp_path):
    cfg = get_swin_cfg("swin_coco.yaml", ["DATASETS.TEST_IMAGES", str(tmp_path)])
    with pytest.raises(ConfigError, match="DATASETS.TEST_JSON is not"):
        use_coco_json_datasets(cfg)


def test_rle_masks_switch_the_mask_format_to_bitmask_with_one_notice_and_load(tmp_path, unregister_new_datasets,
                                                                             capsys):
    write_other_shapes(tmp_path, "train", 6, seed=0)  # rings have holes: RLE masks
    cfg = get_swin_cfg("swin_shapes.yaml", ["DATASETS.TRAIN_JSON", str(tmp_path / "train.json")])
    assert cfg.INPUT.MASK_FORMAT == "polygon"
    use_coco_json_datasets(cfg)
    notices = [line for line in capsys.readouterr().err.splitlines() if "MASK_FORMAT" in line]
    assert len(notices) == 1 and notices[0].startswith("notice: INPUT.MASK_FORMAT polygon -> bitmask: ")
    assert str(tmp_path / "train.json") in notices[0] and cfg.INPUT.MASK_FORMAT == "bitmask"
    use_coco_json_datasets(cfg)  # each worker process: nothing printed again
    assert "MASK_FORMAT" not in capsys.readouterr().err
    mapper = DatasetMapper(cfg, is_train=True)
    records = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])
    rle = [record for record in records if any(isinstance(a["segmentation"], dict) for a in record["annotations"])]
    assert rle and isinstance(mapper(rle[0])["instances"].gt_masks, BitMasks)


def test_polygon_masks_keep_the_configured_mask_format(fruit, capsys):
    train, _ = fruit
    cfg = get_swin_cfg("swin_shapes.yaml", ["DATASETS.TRAIN_JSON", str(train)])
    use_coco_json_datasets(cfg)
    assert cfg.INPUT.MASK_FORMAT == "polygon" and "MASK_FORMAT" not in capsys.readouterr().err
