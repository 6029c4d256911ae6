"""Multi-process training on CPU (gloo), started by ``--num-gpus 2`` or by ``torchrun``: ranks end with
identical weights, stop together on SIGTERM, and a dead rank ends the job quickly with its name."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.shapes import REPO, make_tiny_shapes, train_net_command
from swin_scratch.weights.files import read_checkpoint

pytestmark = pytest.mark.slow

# Runs tools/train_net.py's main; every rank writes its pid when training starts and, when
# training returns, its weights and last iteration (modules are imported again in spawned ranks).
EVERY_RANK_REPORTS = """
import os, sys, torch
from detectron2.utils import comm
import swin_scratch.engine.trainer as trainer_module

original_train = trainer_module.Trainer.train

def train_and_report(self):
    out = self.cfg.OUTPUT_DIR
    with open(f"{out}/rank{comm.get_rank()}.pid", "w") as handle:
        handle.write(str(os.getpid()))
    result = original_train(self)
    model = self.model.module if hasattr(self.model, "module") else self.model
    torch.save({"model": model.state_dict(), "iter": self.iter},
               f"{out}/rank{comm.get_rank()}_of_{comm.get_world_size()}.pth")
    return result

trainer_module.Trainer.train = train_and_report

if __name__ == "__main__":
    from swin_scratch.engine.train import main

    sys.exit(main(sys.argv[1:]))
"""

LAUNCHERS = {
    "spawn": lambda script, args: [sys.executable, str(script), "--num-gpus", "2", *args],
    "torchrun": lambda script, args: [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node", "2", str(script), *args],
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_tiny_shapes(tmp_path_factory.mktemp("shapes"))


def _command(tmp_path: Path, shapes: Path, launcher: str, *options: str) -> tuple[list[str], Path]:
    output = tmp_path / "out"
    script = tmp_path / "every_rank_reports.py"
    script.write_text(EVERY_RANK_REPORTS)
    args = train_net_command(output, shapes, "SOLVER.IMS_PER_BATCH", "4", "MODEL.DEVICE", "cpu",
                             "DATASETS.TEST", "()", *options)[2:]
    return LAUNCHERS[launcher](script, args), output


def _rank_reports(output: Path) -> tuple[dict, dict]:
    return tuple(torch.load(output / f"rank{rank}_of_2.pth", weights_only=True) for rank in (0, 1))


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)  # the test can clean up every process of the job


def _wait_for(process: subprocess.Popen, *paths: Path) -> None:
    deadline = time.time() + 300
    while not all(path.exists() for path in paths):
        if process.poll() is not None or time.time() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"{[p.name for p in paths]} not written (exit {process.returncode}):\n"
                        f"{stdout[-2000:]}\n{stderr[-3000:]}")
        time.sleep(0.02)


def _assert_identical_weights(output: Path) -> None:
    rank0, rank1 = _rank_reports(output)
    assert rank0["model"].keys() == rank1["model"].keys()
    for key in rank0["model"]:
        assert torch.equal(rank0["model"][key], rank1["model"][key]), key


@pytest.mark.parametrize("launcher", ["spawn", "torchrun"])
def test_two_cpu_processes_train_with_gloo_and_end_with_identical_weights(tmp_path, shapes, launcher):
    command, output = _command(tmp_path, shapes, launcher, "SOLVER.MAX_ITER", "3")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "World size: 2" in result.stdout + result.stderr  # detectron2's default_setup, logged by rank 0
    # Each rank saw different images; only DDP's gradient all-reduce keeps the weights equal.
    _assert_identical_weights(output)
    assert [report["iter"] for report in _rank_reports(output)] == [3, 3]


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_iteration_with_one_checkpoint(tmp_path, shapes):
    command, output = _command(tmp_path, shapes, "spawn", "SOLVER.MAX_ITER", "1000",
                               "SOLVER.CHECKPOINT_PERIOD", "1000")
    process = _start(command)
    _wait_for(process, output / "rank0.pid", output / "rank1.pid")
    time.sleep(2)  # into training
    os.kill(int((output / "rank1.pid").read_text()), signal.SIGTERM)  # only rank 1 is told
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]

    stops = re.findall(r"^SIGTERM: stopped at iteration (\d+), checkpoint saved to (\S+);", stderr, re.MULTILINE)
    assert len(stops) == 1, stderr[-3000:]  # rank 0 reports (and saves) once
    iteration, checkpoint = int(stops[0][0]), Path(stops[0][1])
    assert [report["iter"] for report in _rank_reports(output)] == [iteration, iteration]
    _assert_identical_weights(output)
    assert sorted(path.name for path in output.glob("model_*.pth")) == [checkpoint.name]
    assert read_checkpoint(checkpoint)["iteration"] == iteration
    assert (output / "last_checkpoint").read_text() == checkpoint.name


@pytest.mark.parametrize("launcher", ["spawn", "torchrun"])
def test_a_killed_rank_ends_the_job_within_60_s_naming_it(tmp_path, shapes, launcher):
    command, output = _command(tmp_path, shapes, launcher, "SOLVER.MAX_ITER", "1000",
                               "SOLVER.CHECKPOINT_PERIOD", "2")
    process = _start(command)
    _wait_for(process, output / "rank0.pid", output / "rank1.pid", output / "last_checkpoint")
    survivor = int((output / "rank0.pid").read_text())
    killed_at = time.time()
    os.kill(int((output / "rank1.pid").read_text()), signal.SIGKILL)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        os.killpg(process.pid, signal.SIGKILL) if process.poll() is None else None
    assert time.time() - killed_at < 60
    assert process.returncode != 0
    # the surviving rank says which rank it lost, then exits non-zero
    assert re.search(r"^error: rank 0 lost rank 1 at iteration \d+", stderr, re.MULTILINE), stderr[-3000:]
    if launcher == "spawn":
        assert re.search(r"^error: training process rank 1 \(pid \d+\) was killed by SIGKILL", stderr,
                         re.MULTILINE), stderr[-3000:]
    else:  # torchrun's own failure summary
        assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", stderr) and "Signal 9 (SIGKILL)" in stderr, stderr[-3000:]
    assert not os.path.exists(f"/proc/{survivor}") or "zombie" in open(f"/proc/{survivor}/status").read().lower()
    # no half-written checkpoint: no temp files, and every checkpoint loads
    assert not [path.name for path in output.iterdir() if path.name.endswith(".tmp")]
    for checkpoint in output.glob("model_*.pth"):
        read_checkpoint(checkpoint)
    assert (output / (output / "last_checkpoint").read_text()).exists()
