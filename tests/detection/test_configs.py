"""Every shipped config builds on CPU and runs a forward; registration and config keys are in place."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detectron2.modeling import BACKBONE_REGISTRY, build_model

import swin_scratch.detection  # noqa: F401  (registers the backbones)
from swin_scratch.detection.config import CONFIGS_DIR, ConfigError, get_swin_cfg, resolve_config_path

ALL_CONFIGS = sorted(p.name for p in CONFIGS_DIR.glob("*.yaml") if not p.name.startswith("Base-"))


def test_backbones_are_registered_on_import():
    for name in ("build_swin_backbone", "build_swin_fpn_backbone", "build_retinanet_swin_fpn_backbone"):
        assert BACKBONE_REGISTRY.get(name) is not None


def test_add_swin_config_adds_every_documented_key():
    cfg = get_swin_cfg()
    expected = {
        "EMBED_DIM", "DEPTHS", "NUM_HEADS", "WINDOW_SIZE", "MLP_RATIO", "QKV_BIAS", "DROP_PATH_RATE",
        "APE", "PATCH_NORM", "OUT_FEATURES", "FROZEN_STAGES", "USE_CHECKPOINT",
    }
    assert expected <= set(cfg.MODEL.SWIN.keys())
    assert cfg.SOLVER.OPTIMIZER == "AdamW" and tuple(cfg.SOLVER.BETAS) == (0.9, 0.999)
    # every key carries an explanatory comment in config.py
    source = Path(swin_scratch.detection.config.__file__).read_text()
    for key in expected:
        line = next(text for text in source.splitlines() if f"cfg.MODEL.SWIN.{key} =" in text)
        assert "#" in line, f"MODEL.SWIN.{key} has no comment"


def test_bare_config_name_resolves_inside_configs_dir():
    assert resolve_config_path("swin_coco.yaml") == CONFIGS_DIR / "swin_coco.yaml"


def test_swin_coco_is_mask_rcnn_swin_t_with_the_official_3x_recipe():
    cfg = get_swin_cfg("swin_coco.yaml")
    assert cfg.MODEL.MASK_ON and cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert cfg.MODEL.BACKBONE.NAME == "build_swin_fpn_backbone"
    assert (cfg.MODEL.SWIN.EMBED_DIM, list(cfg.MODEL.SWIN.DEPTHS)) == (96, [2, 2, 6, 2])
    assert cfg.MODEL.SWIN.DROP_PATH_RATE == 0.2
    assert (cfg.SOLVER.OPTIMIZER, cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY) == ("AdamW", 1e-4, 0.05)
    assert cfg.SOLVER.IMS_PER_BATCH == 16
    iterations_per_epoch = 117266 / 16  # COCO train2017 images with annotations
    assert cfg.SOLVER.MAX_ITER / iterations_per_epoch == pytest.approx(36, rel=0.01)
    assert [s / iterations_per_epoch for s in cfg.SOLVER.STEPS] == pytest.approx([27, 33], rel=0.01)
    assert min(cfg.INPUT.MIN_SIZE_TRAIN) == 480 and max(cfg.INPUT.MIN_SIZE_TRAIN) == 800
    assert cfg.INPUT.MAX_SIZE_TRAIN == 1333 and cfg.INPUT.CROP_BRANCH.ENABLED
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (800, 1333)


def test_unknown_config_key_names_the_key():
    with pytest.raises(ConfigError, match="MODEL.SWIN.EMBED_DIMS"):
        get_swin_cfg("swin_shapes.yaml", ["MODEL.SWIN.EMBED_DIMS", "64"])


def test_missing_config_file_names_the_path_and_lists_configs():
    with pytest.raises(ConfigError, match="no_such.yaml.*swin_coco.yaml"):
        get_swin_cfg("no_such.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_config_builds_on_cpu_and_runs_one_forward(config):
    cfg = get_swin_cfg(config, ["MODEL.DEVICE", "cpu", "MODEL.SWIN.DEPTHS", "[1, 1, 1, 1]"])
    model = build_model(cfg).eval()
    image = torch.randint(0, 255, (3, 150, 200), dtype=torch.uint8)  # not a multiple of 32
    with torch.no_grad():
        (output,) = model([{"image": image, "height": 150, "width": 200}])
    instances = output["instances"]
    assert instances.image_size == (150, 200)
    assert {"pred_boxes", "scores", "pred_classes"} <= set(instances.get_fields())
    if cfg.MODEL.MASK_ON:
        assert instances.has("pred_masks")


def test_coco_configs_keep_two_images_per_process_like_the_official_eight_gpu_recipe():
    from detectron2.engine import DefaultTrainer

    cfg = get_swin_cfg("swin_coco.yaml")
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.REFERENCE_WORLD_SIZE) == (16, 8)
    one_process = DefaultTrainer.auto_scale_workers(cfg, 1)  # a CPU machine: batch 16 would need ~40 GB
    assert one_process.SOLVER.IMS_PER_BATCH == 2
    assert one_process.SOLVER.MAX_ITER == 8 * cfg.SOLVER.MAX_ITER
    assert one_process.SOLVER.BASE_LR == pytest.approx(cfg.SOLVER.BASE_LR / 8)
    assert DefaultTrainer.auto_scale_workers(cfg, 8).SOLVER.IMS_PER_BATCH == 16


def test_a_hand_set_batch_that_cannot_be_scaled_is_used_as_given_with_one_notice(capsys):
    from swin_scratch.engine.train import keep_batch_as_given_if_not_scalable

    cfg = get_swin_cfg("swin_coco.yaml", ["SOLVER.IMS_PER_BATCH", "2"])
    keep_batch_as_given_if_not_scalable(cfg)
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and notice[0].startswith("notice: SOLVER.IMS_PER_BATCH 2")
    assert cfg.SOLVER.REFERENCE_WORLD_SIZE == 0 and cfg.SOLVER.IMS_PER_BATCH == 2
