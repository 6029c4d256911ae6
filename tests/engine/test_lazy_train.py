"""``swin-train --config NAME.py`` (swin_scratch/engine/lazy_train.py): a LazyConfig recipe trains with
mixed precision, evaluates, resumes, evaluates alone, stops cleanly on SIGTERM, and its mistakes are
one ``error:`` line."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers.shapes import REPO, TINY_LAZY_OVERRIDES, load_tool, make_tiny_shapes

RECIPE = "mask_rcnn_swin_t_fpn_3x.py"


@pytest.fixture(scope="module")
def datasets_root(tmp_path_factory):
    """``$DETECTRON2_DATASETS`` for the runs: the built-in ``shapes_*`` datasets live in its ``shapes/``."""
    root = tmp_path_factory.mktemp("datasets")
    make_tiny_shapes(root / "shapes", num_train=8, num_val=2)
    return root


def _command(output, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "tools/train_net.py"), "--config", RECIPE, *extra, *TINY_LAZY_OVERRIDES,
            f"train.output_dir={output}"]


def _run(command: list[str], datasets_root, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "DETECTRON2_DATASETS": str(datasets_root)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.xdist_group("lazy_train")
def test_a_lazyconfig_trains_with_amp_evaluates_resumes_and_evaluates_alone(datasets_root, tmp_path):
    output = tmp_path / "run"
    _run(_command(output, "train.max_iter=2", "train.amp.enabled=True", "train.amp.precision=bf16"), datasets_root)
    final = torch.load(output / "model_final.pth", map_location="cpu", weights_only=True)
    assert final["iteration"] == 1 and "optimizer" in final["trainer"]
    assert (output / "inference/shapes_val/coco_instances_results.json").is_file()  # evaluated at the end
    assert (output / "config.yaml").is_file() and (output / "metrics.json").is_file()

    resumed = _run(_command(output, "--resume", "train.max_iter=3"), datasets_root)
    assert "Starting training from iteration 2" in resumed.stdout  # detectron2's log
    assert torch.load(output / "model_final.pth", map_location="cpu", weights_only=True)["iteration"] == 2

    evaluated = _run(_command(tmp_path / "eval", "--eval-only", f"train.init_checkpoint={output / 'model_final.pth'}"),
                     datasets_root)
    assert "copypaste: Task: bbox" in evaluated.stdout and "copypaste: Task: segm" in evaluated.stdout
    assert not (tmp_path / "eval" / "model_final.pth").exists()


PREEMPTED = re.compile(r"^SIGTERM: stopped at iteration (\d+), checkpoint saved to (\S+); resume with: (.+)$", re.M)


@pytest.mark.slow
@pytest.mark.xdist_group("lazy_train")
def test_sigterm_checkpoints_a_lazyconfig_run_and_exits_0(datasets_root, tmp_path):
    output = tmp_path / "preempted"
    env = {**os.environ, "DETECTRON2_DATASETS": str(datasets_root)}
    process = subprocess.Popen(_command(output, "train.max_iter=500", "train.checkpointer.period=1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while not (output / "last_checkpoint").exists():
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    match = PREEMPTED.search(stderr)
    assert match, stderr[-3000:]
    assert (output / "last_checkpoint").read_text() == f"model_{int(match.group(1)):07d}.pth"
    assert " --resume " in match.group(3) and RECIPE in match.group(3)
    saved = torch.load(match.group(2), map_location="cpu", weights_only=True)
    assert saved["iteration"] == int(match.group(1)) and not (output / "model_final.pth").exists()


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["MODEL.WEIGHTS", "x.pth"], r"LazyConfig overrides are key=value \(e\.g\. train\.max_iter=100\), got MODEL"),
        (["train.no_such_key.deeper=1"], r"override train\.no_such_key\.deeper=1: the config has no 'train\.no_such"),
        (["modle.backbone.norm=LN"], r"has no 'modle.backbone' to set 'norm' in \(did you mean model\?\)"),
        (["--train-json", "my/train.json"], r"--train-json is for YAML configs"),
        (["train.device=cpu"], r"coco_2017_train"),  # the recipe's COCO is not on this machine
    ],
)
def test_lazyconfig_mistakes_are_one_error_line(args, pattern, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert load_tool("train_net").main(["--config", RECIPE, *args]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), errors


def test_a_new_key_is_added_with_one_warning_naming_the_closest_key(capsys):
    from swin_scratch.detection.config import CONFIGS_DIR
    from swin_scratch.engine.lazy_train import load_lazy_config

    cfg = load_lazy_config(str(CONFIGS_DIR / RECIPE), ["train.max_iters=5", "train.max_iter=7", "+train.seed=3"])
    assert (cfg.train.max_iters, cfg.train.max_iter, cfg.train.seed) == (5, 7, 3)
    warning = capsys.readouterr().err.strip()
    assert warning == ("warning: override train.max_iters=5: train.max_iters is not in the config; added as a new key "
                       "(did you mean train.max_iter?)")
