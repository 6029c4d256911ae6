"""swin_scratch.model_zoo: one table of the shipped configs (with the official COCO results of their
recipes), by-name access to their files, configs and models, and docs that show the same table."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from detectron2.config import CfgNode
from omegaconf import DictConfig

from helpers.tools import REPO
from swin_scratch import model_zoo
from swin_scratch.detection.config import CONFIGS_DIR, ConfigError, shipped_config_names

# (embed_dim, depths) of each variant
VARIANTS = {"Swin-T": (96, [2, 2, 6, 2]), "Swin-S": (96, [2, 2, 18, 2]), "Swin-B": (128, [2, 2, 18, 2])}
# epochs of COCO train2017 a schedule stands for, and the images per epoch its source counts
SCHEDULE_EPOCHS = {"1x": 12, "3x": 36, "50 ep, LSJ 1024": 50}


def test_the_zoo_lists_every_shipped_config_but_the_base():
    assert model_zoo.list_configs() == sorted(set(shipped_config_names()) - {"Base-Swin-RCNN-FPN.yaml"})
    assert {name.rsplit(".", 1)[1] for name in model_zoo.list_configs()} == {"yaml", "py"}


def test_official_results_are_those_of_the_published_tables():
    published = {  # Swin-Transformer-Object-Detection README (ImageNet-1K rows), ViTDet README (COCO, Swin-B)
        "mask_rcnn_swin_t_fpn_1x.yaml": (43.7, 39.8),
        "mask_rcnn_swin_t_fpn_3x.yaml": (46.0, 41.6),
        "mask_rcnn_swin_t_fpn_3x.py": (46.0, 41.6),
        "swin_coco.yaml": (46.0, 41.6),
        "mask_rcnn_swin_s_fpn_3x.yaml": (48.5, 43.3),
        "cascade_mask_rcnn_swin_t_fpn_3x.yaml": (50.4, 43.7),
        "cascade_mask_rcnn_swin_s_fpn_3x.yaml": (51.9, 45.0),
        "cascade_mask_rcnn_swin_b_fpn_3x.yaml": (51.9, 45.0),
        "cascade_mask_rcnn_swin_b_in21k_50ep.py": (53.9, 46.2),
    }
    measured = {name: (e.box_ap, e.mask_ap) for name, e in model_zoo.ZOO.items() if e.box_ap is not None}
    assert measured == published


@pytest.mark.parametrize("name", [n for n in model_zoo.list_configs() if model_zoo.ZOO[n].backbone in VARIANTS])
def test_each_config_builds_the_backbone_and_schedule_its_row_names(name):
    entry = model_zoo.ZOO[name]
    cfg = model_zoo.get_config(name)
    if entry.is_lazy_config:
        assert isinstance(cfg, DictConfig)
        swin = cfg.model.backbone.bottom_up.swin
        built = (swin.embed_dim, list(swin.depths))
        epochs = cfg.train.max_iter * cfg.dataloader.train.total_batch_size
        weights = cfg.train.init_checkpoint
    else:
        assert isinstance(cfg, CfgNode) and "SWIN" in cfg.MODEL  # add_swin_config applied
        built = (cfg.MODEL.SWIN.EMBED_DIM, list(cfg.MODEL.SWIN.DEPTHS))
        epochs = cfg.SOLVER.MAX_ITER * cfg.SOLVER.IMS_PER_BATCH
        weights = cfg.MODEL.WEIGHTS
    assert built == VARIANTS[entry.backbone]
    images_per_epoch = 118000 if entry.ap_source == model_zoo.VITDET else 117266
    assert epochs / images_per_epoch == pytest.approx(SCHEDULE_EPOCHS[entry.schedule], rel=0.03)
    assert ("22k" in weights) == (entry.pretrain == "ImageNet-22K")


def test_config_files_are_inside_the_package():
    path = model_zoo.get_config_file("swin_shapes.yaml")
    assert path == CONFIGS_DIR / "swin_shapes.yaml" and path.is_file()
    assert CONFIGS_DIR.parent.name == "swin_scratch"


def test_an_unknown_name_is_one_error_listing_the_names_there_are():
    for call in (model_zoo.get_config_file, model_zoo.get_config, model_zoo.get):
        with pytest.raises(model_zoo.UnknownConfigError) as caught:
            call("mask_rcnn_swin_x.yaml")
        message = str(caught.value)
        assert "'mask_rcnn_swin_x.yaml'" in message and "\n" not in message
        assert all(name in message for name in model_zoo.list_configs())
        assert isinstance(caught.value, ConfigError)  # the tools print those as one error: line


def test_trained_names_the_official_coco_checkpoint_in_the_configs_weights_key():
    cfg = model_zoo.get_config("mask_rcnn_swin_t_fpn_3x.yaml", trained=True)
    assert cfg.MODEL.WEIGHTS == model_zoo.RELEASES + "v1.0.2/mask_rcnn_swin_tiny_patch4_window7.pth"
    lazy = model_zoo.get_config("mask_rcnn_swin_t_fpn_3x.py", trained=True)
    assert lazy.train.init_checkpoint == cfg.MODEL.WEIGHTS
    with pytest.raises(ConfigError, match="cascade_mask_rcnn_swin_t_fpn_3x.yaml has no official COCO-trained"):
        model_zoo.get_config("cascade_mask_rcnn_swin_t_fpn_3x.yaml", trained=True)


def test_get_builds_the_model_and_trained_loads_its_weights_through_the_checkpointer(tmp_path, monkeypatch):
    fresh = model_zoo.get("mask_rcnn_swin_t_fpn_3x.yaml", device="cpu")
    assert fresh.training and sum(p.numel() for p in fresh.parameters()) == 47_794_602
    weights = tmp_path / "model_final.pth"
    torch.save({"model": fresh.state_dict()}, weights)
    entry = model_zoo.ZOO["mask_rcnn_swin_t_fpn_3x.py"]
    monkeypatch.setitem(model_zoo.ZOO, entry.name, dataclasses.replace(entry, checkpoint=str(weights)))
    trained = model_zoo.get(entry.name, trained=True, device="cpu")  # the LazyConfig model, the YAML one's weights
    assert not trained.training
    for (name, expected), (other, actual) in zip(fresh.state_dict().items(), trained.state_dict().items()):
        assert name == other and torch.equal(actual, expected), name


def test_the_docs_show_the_zoo_table():
    docs = (REPO / "docs/detection.md").read_text()
    assert model_zoo.markdown_table() in docs


def test_the_model_zoo_module_prints_the_table_and_one_error_line(capsys):
    assert model_zoo.main([]) == 0
    assert capsys.readouterr().out.strip() == model_zoo.markdown_table()
    assert model_zoo.main(["nope.yaml"]) == 2
    assert re.fullmatch(r"error: no config 'nope.yaml' in the model zoo; the zoo has: .*\n", capsys.readouterr().err)
