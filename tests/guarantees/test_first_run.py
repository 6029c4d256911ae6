"""A user's first real run: the COCO config (MODEL.DEVICE cuda) on a machine without a GPU, on the
user's own COCO-format files, through every entry point: training, --eval-only, the demo, export.

One tiny training run (2 iterations, through the CLI) is shared by the tests that read its outputs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from helpers.own_data import CATEGORY_IDS, CLASS_NAMES, write_own_dataset
from helpers.shapes import REPO, TINY_TRAINING_OVERRIDES, load_tool

pytestmark = pytest.mark.slow

CUDA_WARNING = "warning: MODEL.DEVICE is 'cuda' but this machine has no usable CUDA GPU"
NO_WEIGHTS = ["MODEL.WEIGHTS", ""]  # the COCO config's ImageNet URL cannot be fetched offline


def _stderr_lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


@dataclass
class Run:
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    """A folder shared by this session's pytest-xdist workers (xdist_group does not group on pytest 9)."""
    base = tmp_path_factory.getbasetemp()  # under xdist: <session folder>/popen-gw<N>
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="module")
def own_data(session_dir) -> Path:
    return session_dir / "first_run" / "fruit"


@pytest.fixture(scope="module")
def trained(own_data, session_dir) -> tuple[Run, Path]:
    """``train_net.py --config swin_coco.yaml --num-gpus 2 --train-json ... --test-json ...`` as a user types it
    (relative paths, run from the data's parent folder), with CUDA hidden so it behaves the same on GPU
    machines. Run once per session: the first worker to get here trains, the others read its outputs."""
    from filelock import FileLock

    output, logs = own_data.parent / "out", own_data.parent / "logs.json"
    with FileLock(str(own_data.parent) + ".lock"):
        if not logs.exists():
            write_own_dataset(own_data)
            command = [sys.executable, str(REPO / "tools/train_net.py"), "--config", "swin_coco.yaml",
                       "--num-gpus", "2", "--train-json", "fruit/train.json", "--test-json", "fruit/val.json",
                       *NO_WEIGHTS, "SOLVER.MAX_ITER", "2", *TINY_TRAINING_OVERRIDES, "OUTPUT_DIR", str(output)]
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
            result = subprocess.run(command, capture_output=True, text=True, cwd=own_data.parent, env=env, timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
            logs.write_text(json.dumps({"stdout": result.stdout, "stderr": result.stderr}))
    return Run(**json.loads(logs.read_text())), output


def test_own_coco_json_trains_and_evaluates_with_its_category_names(trained):
    result, output = trained
    log = result.stdout + result.stderr
    assert "Traceback" not in log
    for name, category_id in (("apple", 3), ("kiwi", 17), ("plum", 90)):
        assert re.search(rf"\| {name}\s+\|\s+{category_id} \|", log), f"no per-category row for {name}"
    predictions = json.loads((output / "inference/fruit_val/coco_instances_results.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= CATEGORY_IDS


def test_cuda_config_on_a_machine_without_gpu_warns_once_and_trains_in_cpu_processes(trained):
    result, output = trained
    assert len(_stderr_lines(result.stderr, CUDA_WARNING)) == 1
    assert "World size: 2" in result.stdout + result.stderr  # --num-gpus 2: two CPU processes (gloo)
    assert "DEVICE: cpu" in (output / "config.yaml").read_text()
    assert (output / "model_final.pth").is_file()


def test_num_classes_comes_from_the_json_with_one_notice(trained):
    result, output = trained
    notices = _stderr_lines(result.stderr, "notice: MODEL.ROI_HEADS.NUM_CLASSES")
    assert len(notices) == 1 and notices[0].startswith("notice: MODEL.ROI_HEADS.NUM_CLASSES 80 -> 3")
    assert notices[0].endswith("fruit/train.json: apple, kiwi, plum")
    weights = torch.load(output / "model_final.pth", weights_only=True)["model"]
    assert weights["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3 + 1  # + background


def test_checkpoint_stores_the_class_names(trained):
    _, output = trained
    stored = torch.load(output / "model_final.pth", weights_only=True)["dataset_classes"]
    assert stored["thing_classes"] == CLASS_NAMES


@pytest.fixture
def no_cuda(monkeypatch, unregister_new_datasets):
    """This machine as one without a usable GPU, also when the tests run on a GPU machine (and the
    tools' in-process dataset registrations undone after each test)."""
    import swin_scratch.detection.device as device

    monkeypatch.setattr(device, "cuda_is_usable", lambda: False)


def test_eval_only_with_a_cuda_config_runs_on_the_cpu(trained, own_data, no_cuda, tmp_path, capsys):
    _, output = trained
    argv = ["--config", "swin_coco.yaml", "--eval-only", "--test-json", str(own_data / "val.json"),
            "MODEL.WEIGHTS", str(output / "model_final.pth"), *TINY_TRAINING_OVERRIDES, "OUTPUT_DIR", str(tmp_path)]
    assert load_tool("train_net").main(argv) == 0
    assert len(_stderr_lines(capsys.readouterr().err, CUDA_WARNING)) == 1
    predictions = json.loads((tmp_path / "inference/fruit_val/coco_instances_results.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= CATEGORY_IDS


def test_demo_names_classes_from_the_checkpoint_and_runs_a_cuda_config_on_the_cpu(trained, own_data, no_cuda,
                                                                                   tmp_path, capsys):
    _, output = trained
    argv = ["--config", "swin_coco.yaml", "--weights", str(output / "model_final.pth"),
            "--input", str(own_data / "images/part0"), "--output", str(tmp_path), "--score-threshold", "0",
            "--opts", *TINY_TRAINING_OVERRIDES, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
    assert load_tool("demo").main(argv) == 0
    assert len(_stderr_lines(capsys.readouterr().err, CUDA_WARNING)) == 1
    names = set()
    for record in tmp_path.glob("*_pred.json"):
        names |= set(json.loads(record.read_text())["class_names"])
    assert names and names <= set(CLASS_NAMES)  # swin_coco.yaml alone would say COCO's 80 names


def test_export_of_a_cuda_config_runs_on_the_cpu_with_the_trained_heads(trained, no_cuda, tmp_path, capsys):
    _, output = trained
    argv = ["--config", "swin_coco.yaml", "--weights", str(output / "model_final.pth"), "--format", "onnx",
            "--output", str(tmp_path), "--part", "backbone", *TINY_TRAINING_OVERRIDES[:12]]
    assert load_tool("export_model").main(argv) == 0
    captured = capsys.readouterr()
    assert len(_stderr_lines(captured.err, CUDA_WARNING)) == 1
    assert _stderr_lines(captured.err, "notice: MODEL.ROI_HEADS.NUM_CLASSES 80 -> 3")  # no silently random heads
    assert captured.out.count("OK") == 2 and (tmp_path / "swin_backbone.onnx").is_file()
