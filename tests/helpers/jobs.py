"""Running ``tools/train_net.py`` as a job of one or more processes in tests (issue 24): a script that
lets every rank report its pid and final weights, stop signals sent to the whole process group from
inside the job at chosen moments, and the comparisons of the results."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import torch

from helpers.shapes import REPO

# tools/train_net.py's main, with two additions that tests switch on through the environment:
# - every rank writes OUTPUT_DIR/rank<R>.pid when training starts and, when training returns,
#   rank<R>_of_<W>.pth with its weights, last iteration and pid;
# - SIGNAL_GROUP="<SIGNAL> worker <shard> <position>": the loader worker that maps image <position>
#   of shard <shard>'s stream (without accumulation, shard = rank) signals the whole process group;
#   "<SIGNAL> evaluation <rank>":
#   <rank> signals it when its first evaluation batch arrives.
# Modules are imported again in spawned ranks and spawned loader workers, so this runs there too.
REPORTING_TRAIN_NET = """
import os, signal, sys
import torch
from detectron2.utils import comm
import swin_scratch.engine.trainer as trainer_module
import swin_scratch.engine.train_loader as train_loader_module
from swin_scratch.detection.evaluator import SwinCOCOEvaluator

original_train = trainer_module.Trainer.train

def train_and_report(self):
    out, rank = self.cfg.OUTPUT_DIR, comm.get_rank()
    with open(f"{out}/rank{rank}.pid", "w") as handle:
        handle.write(str(os.getpid()))
    result = original_train(self)
    model = self.model.module if hasattr(self.model, "module") else self.model
    torch.save({"model": model.state_dict(), "iter": self.iter, "pid": os.getpid()},
               f"{out}/rank{rank}_of_{comm.get_world_size()}.pth")
    return result

trainer_module.Trainer.train = train_and_report

def signal_the_group(name):
    print(f"test: sending {name} to the process group from pid {os.getpid()}", file=sys.stderr, flush=True)
    os.killpg(os.getpgid(0), getattr(signal, name))

SIGNAL_GROUP = os.environ.get("SIGNAL_GROUP", "").split()
if SIGNAL_GROUP and SIGNAL_GROUP[1] == "worker":
    original_getitem = train_loader_module.PositionSeededMapDataset.__getitem__

    def getitem_then_signal(self, item):
        shard, position, _ = item
        if shard == int(SIGNAL_GROUP[2]) and position == int(SIGNAL_GROUP[3]):
            signal_the_group(SIGNAL_GROUP[0])
        return original_getitem(self, item)

    train_loader_module.PositionSeededMapDataset.__getitem__ = getitem_then_signal
if SIGNAL_GROUP and SIGNAL_GROUP[1] == "evaluation":
    original_process = SwinCOCOEvaluator.process
    signalled = []

    def process_then_signal(self, inputs, outputs):
        if comm.get_rank() == int(SIGNAL_GROUP[2]) and not signalled:
            signalled.append(True)
            signal_the_group(SIGNAL_GROUP[0])
        return original_process(self, inputs, outputs)

    SwinCOCOEvaluator.process = process_then_signal

if __name__ == "__main__":
    from swin_scratch.engine.train import main

    sys.exit(main(sys.argv[1:]))
"""


def reporting_script(folder: Path) -> Path:
    script = folder / "reporting_train_net.py"
    script.write_text(REPORTING_TRAIN_NET)
    return script


def start_job(command: list[str], env: Optional[dict[str, str]] = None) -> subprocess.Popen:
    """Start a job in a session of its own: its process group is what a scheduler would signal."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True, env={**os.environ, **(env or {})})


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    """Wait for the job; on timeout kill its whole process group and fail with its output."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"job still running after {timeout} s:\n{stdout[-2000:]}\n{stderr[-3000:]}")


def wait_for(process: subprocess.Popen, *paths: Path, timeout: float = 300) -> None:
    """Return once every path exists; fail (killing the job) if the job ends first."""
    deadline = time.time() + timeout
    while not all(path.exists() for path in paths):
        if process.poll() is not None or time.time() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"{[p.name for p in paths]} not written (exit {process.returncode}):\n"
                        f"{stdout[-2000:]}\n{stderr[-3000:]}")
        time.sleep(0.02)


def rank_reports(output: Path, world_size: int) -> list[dict]:
    return [torch.load(output / f"rank{rank}_of_{world_size}.pth", weights_only=True) for rank in range(world_size)]


def assert_equal_weights(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor], where: str = "") -> None:
    assert expected.keys() == actual.keys(), where
    for key in expected:
        assert torch.equal(expected[key], actual[key]), f"{where}: {key} differs"


def final_weights(output: Path) -> dict[str, torch.Tensor]:
    return torch.load(output / "model_final.pth", map_location="cpu", weights_only=True)["model"]


def free_port() -> int:
    """A port that was free a moment ago (tests only: another process could take it meanwhile)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def python_command(script: Path, *args: str) -> list[str]:
    return [sys.executable, str(script), *args]
