"""The project as a package, used from outside the clone: the sdist carries the configs and the README,
the wheel built from it installs the package with its configs and console scripts, and in an empty
folder, with nothing of the clone on the path, ``swin-train`` trains, user code builds the backbone with
detectron2's own API, and ``model_zoo`` lists and loads the configs."""
from __future__ import annotations

import json
import re
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from helpers.packaging import (
    build_sdist,
    build_wheel,
    copy_source_tree,
    install_wheel,
    layered_venv,
    outside_environment,
    unpack_sdist,
)
from helpers.shapes import TINY_TRAINING_OVERRIDES, make_tiny_shapes
from swin_scratch.detection.config import shipped_config_names

CONSOLE_SCRIPTS = ("swin-train", "swin-evaluate", "swin-demo", "swin-export", "swin-convert")


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sdist")
    return build_sdist(copy_source_tree(root / "clone"), root / "dist")


@pytest.fixture(scope="module")
def installed(sdist, tmp_path_factory) -> Path:
    """A fresh venv (layered on this one's packages) with the wheel built from the sdist; returns the venv."""
    root = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(unpack_sdist(sdist, root / "unpacked"), root / "wheels")
    venv = root / "venv"
    install_wheel(wheel, layered_venv(venv))
    return venv


@pytest.fixture
def empty_folder(tmp_path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _run_outside(command: list[str], venv: Path, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=outside_environment(venv), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.xdist_group("packaging")
def test_the_sdist_carries_the_package_its_configs_and_the_readme(sdist):
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        readme = archive.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/README.md").read().decode()
    assert readme.startswith("# swin_scratch")
    assert {f"swin_scratch/configs/{name}" for name in shipped_config_names()} <= names
    assert {"pyproject.toml", "setup.py", "swin_scratch/model_zoo.py", "PKG-INFO"} <= names
    assert not [name for name in names if name.startswith(("tests/", "configs/", "tools/"))]


@pytest.mark.slow
@pytest.mark.xdist_group("packaging")
def test_swin_train_trains_from_an_empty_folder_with_the_installed_configs(installed, empty_folder, tmp_path):
    assert all((installed / "bin" / script).is_file() for script in CONSOLE_SCRIPTS)
    shapes = make_tiny_shapes(tmp_path / "shapes", num_train=8, num_val=2)
    command = ["swin-train", "--config", "swin_shapes.yaml", *TINY_TRAINING_OVERRIDES, "SOLVER.MAX_ITER", "2",
               "DATASETS.SHAPES_ROOT", str(shapes), "OUTPUT_DIR", "out"]
    result = _run_outside(command, installed, empty_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (empty_folder / "out/model_final.pth").is_file()
    config = (empty_folder / "out/config.yaml").read_text()
    assert "MAX_ITER: 2" in config

    wrong = _run_outside(["swin-train", "--config", "nope.yaml"], installed, empty_folder)
    errors = [line for line in wrong.stderr.splitlines() if line.startswith("error: ")]
    assert wrong.returncode == 2 and len(errors) == 1, wrong.stderr[-3000:]
    assert "config file not found: 'nope.yaml'" in errors[0] and "swin_shapes.yaml" in errors[0]
    assert str(installed) in errors[0]  # it looked among the installed configs


USER_CODE = """
import json, sys
from pathlib import Path

import torch
from detectron2 import model_zoo as detectron2_zoo
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import swin_scratch
import swin_scratch.detection  # registers the Swin backbones with detectron2
from swin_scratch import model_zoo
from swin_scratch.detection import add_swin_config

cfg = get_cfg()
add_swin_config(cfg)
cfg.merge_from_file(detectron2_zoo.get_config_file("Base-RCNN-FPN.yaml"))  # a detectron2 user's own config
cfg.MODEL.BACKBONE.NAME = "build_swin_fpn_backbone"
cfg.MODEL.FPN.IN_FEATURES = cfg.MODEL.SWIN.OUT_FEATURES
cfg.MODEL.SWIN.EMBED_DIM, cfg.MODEL.SWIN.DEPTHS, cfg.MODEL.SWIN.NUM_HEADS = 16, [1, 1, 1, 1], [1, 1, 2, 2]
cfg.MODEL.DEVICE = "cpu"
model = build_model(cfg)
features = model.backbone(torch.rand(1, 3, 64, 96))

lazy = model_zoo.get_config("mask_rcnn_swin_t_fpn_3x.py")
lsj = model_zoo.get_config("cascade_mask_rcnn_swin_b_in21k_50ep.py")  # imports its neighbour recipe
demo = model_zoo.get("swin_shapes.yaml", device="cpu")
try:
    model_zoo.get_config("nope.yaml")
except model_zoo.UnknownConfigError as err:
    unknown = str(err)
print(json.dumps({
    "package": swin_scratch.__file__,
    "sys_path": sys.path,
    "features": {name: list(value.shape) for name, value in features.items()},
    "configs": model_zoo.list_configs(),
    "config_file": str(model_zoo.get_config_file("mask_rcnn_swin_t_fpn_3x.yaml")),
    "lazy_backbone": lazy.model.backbone.bottom_up._target_.__name__,
    "lazy_max_iter": lazy.train.max_iter,
    "lsj_batch": lsj.dataloader.train.total_batch_size,
    "demo_parameters": sum(p.numel() for p in demo.parameters()),
    "unknown": unknown,
}))
"""


@pytest.mark.slow
@pytest.mark.xdist_group("packaging")
def test_user_code_builds_the_backbone_and_reads_the_model_zoo_from_the_installed_package(installed, empty_folder):
    script = empty_folder / "user_code.py"
    script.write_text(textwrap.dedent(USER_CODE))
    result = _run_outside([str(installed / "bin/python"), script.name], installed, empty_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["package"]).is_relative_to(installed)  # the wheel's copy, not the clone's
    clone = Path(__file__).resolve().parents[1]
    assert not [entry for entry in report["sys_path"] if entry and Path(entry).resolve() == clone]
    assert report["features"] == {"p2": [1, 256, 16, 24], "p3": [1, 256, 8, 12], "p4": [1, 256, 4, 6],
                                  "p5": [1, 256, 2, 3], "p6": [1, 256, 1, 2]}
    assert set(report["configs"]) == set(shipped_config_names()) - {"Base-Swin-RCNN-FPN.yaml"}
    assert Path(report["config_file"]).is_relative_to(installed) and report["config_file"].endswith(".yaml")
    assert (report["lazy_backbone"], report["lazy_max_iter"], report["lsj_batch"]) == ("SwinBackbone", 264000, 64)
    assert report["demo_parameters"] > 0
    assert re.match(r"no config 'nope.yaml' in the model zoo; the zoo has: .*swin_shapes\.yaml", report["unknown"])
