"""A stop signal sent to the whole process group (as scancel, timeout and Ctrl-C do: every rank, the
launcher and every data-loader worker at once) ends training at a checkpoint with exit status 0, and
--resume from it ends bit-identical to an uninterrupted run (issue 24, item 1).

Loader workers are on (DATALOADER.NUM_WORKERS 2): they receive the signal too and must not die of it.
The signal comes from inside the job at chosen moments (a loader worker while it maps the first
images; the first evaluation batch), or from the test at a random moment of training.
"""
from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

import pytest
from test_train_resume import _built_once_per_session, assert_same_final_state

from helpers.jobs import (
    assert_equal_weights,
    finish,
    rank_reports,
    reporting_script,
    start_job,
    wait_for,
)
from helpers.shapes import make_tiny_shapes, train_net_command
from swin_scratch.weights.files import read_checkpoint

pytestmark = pytest.mark.slow

MAX_ITER = 10
EVAL_PERIOD = 4  # evaluations after iterations 3 and 7 (and after the last)
RUN_OPTIONS = ("SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", "100", "TEST.EVAL_PERIOD",
               str(EVAL_PERIOD), "MODEL.SWIN.DROP_PATH_RATE", "0.2", "SOLVER.WARMUP_ITERS", "6",
               "MODEL.DEVICE", "cpu")
LAUNCH = {1: (), 2: ("--num-gpus", "2")}
IMAGES_PER_BATCH = {1: "2", 2: "4"}  # 2 images per process
STOPPED = r"^{signal}: stopped at iteration (\d+), checkpoint saved to (\S+); resume with: (python .+)$"


def _options(world_size: int, num_workers: int) -> tuple[str, ...]:
    return (*RUN_OPTIONS, "SOLVER.IMS_PER_BATCH", IMAGES_PER_BATCH[world_size],
            "DATALOADER.NUM_WORKERS", str(num_workers))


def _train_net(output: Path, shapes: Path, world_size: int, num_workers: int, *args: str) -> list[str]:
    return train_net_command(output, shapes, *_options(world_size, num_workers), args=(*LAUNCH[world_size], *args))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    with _built_once_per_session(tmp_path_factory, "preemption_shapes") as (root, built):
        return root if built else make_tiny_shapes(root)


def _reference(tmp_path_factory, shapes: Path, world_size: int) -> Path:
    """An uninterrupted run (no loader workers: they do not change the batches)."""
    with _built_once_per_session(tmp_path_factory, f"preemption_reference_{world_size}") as (output, built):
        if not built:
            _, stderr = finish(start_job(_train_net(output, shapes, world_size, 0)))
            assert (output / "model_final.pth").exists(), stderr[-3000:]
        return output


def _interrupted_run(tmp_path: Path, shapes: Path, world_size: int, signal_group: str) -> tuple[Path, str]:
    """Train with 2 loader workers per rank; ``signal_group`` names who signals the process group
    (helpers.jobs.REPORTING_TRAIN_NET), or is "<SIGNAL> test" for the test itself at a random moment
    after training started. Returns the output folder and stderr; the job must have exited 0."""
    output = tmp_path / "interrupted"
    name, who = signal_group.split()[:2]
    command = _train_net(output, shapes, world_size, 2)
    command[1] = str(reporting_script(tmp_path))
    process = start_job(command, env={"SIGNAL_GROUP": signal_group if who != "test" else ""})
    delay = None
    if who == "test":
        wait_for(process, *(output / f"rank{rank}.pid" for rank in range(world_size)))
        delay = random.uniform(0.0, 1.5)
        time.sleep(delay)
        os.killpg(process.pid, getattr(signal, name))
    _, stderr = finish(process)
    assert process.returncode == 0, f"exit {process.returncode} (signal after {delay} s):\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "killed by signal" not in stderr, stderr[-3000:]
    return output, stderr


def _assert_stopped_at_one_checkpoint(output: Path, stderr: str, signal_name: str, world_size: int) -> int:
    """One stop line (rank 0 reports and saves once), every rank at its iteration; returns it."""
    stops = re.findall(STOPPED.format(signal=signal_name), stderr, re.MULTILINE)
    assert len(stops) == 1, stderr[-3000:]
    iteration, checkpoint, resume = int(stops[0][0]), Path(stops[0][1]), stops[0][2]
    assert " --resume " in resume
    assert sorted(path.name for path in output.glob("model_*.pth")) == [checkpoint.name]
    assert read_checkpoint(checkpoint)["iteration"] == iteration
    assert (output / "last_checkpoint").read_text() == checkpoint.name
    reports = rank_reports(output, world_size)
    assert [report["iter"] for report in reports] == [iteration] * world_size
    for report in reports[1:]:
        assert_equal_weights(reports[0]["model"], report["model"], "rank weights")
    return iteration


def _resume_and_compare(output: Path, shapes: Path, world_size: int, reference: Path, stopped_at: int) -> None:
    _, stderr = finish(start_job(_train_net(output, shapes, world_size, 0, "--resume")))
    assert (output / "model_final.pth").exists(), stderr[-3000:]
    assert f"Starting training from iteration {stopped_at + 1}" in (output / "log.txt").read_text()
    assert_same_final_state(reference, output)


# (world size, who signals the group and with what, the iteration the stop must happen at or None)
CASES = {
    "1rank-SIGTERM-from-a-loader-worker-mapping-the-first-batch": (1, "SIGTERM worker 0 1", 0),
    "1rank-SIGINT-during-evaluation": (1, "SIGINT evaluation 0", EVAL_PERIOD - 1),
    "1rank-SIGTERM-at-a-random-moment": (1, "SIGTERM test", None),
    "2ranks-SIGTERM-from-rank-1s-loader-worker-mapping-the-first-batch": (2, "SIGTERM worker 1 1", 0),
    "2ranks-SIGINT-during-evaluation": (2, "SIGINT evaluation 0", EVAL_PERIOD - 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_stop_signal_to_the_whole_process_group_checkpoints_exits_0_and_resumes_bit_identical(
        tmp_path, tmp_path_factory, shapes, case):
    world_size, signal_group, expected_iteration = CASES[case]
    reference = _reference(tmp_path_factory, shapes, world_size)
    output, stderr = _interrupted_run(tmp_path, shapes, world_size, signal_group)
    iteration = _assert_stopped_at_one_checkpoint(output, stderr, signal_group.split()[0], world_size)
    if expected_iteration is not None:
        assert iteration == expected_iteration, stderr[-3000:]
    assert iteration < MAX_ITER - 1, "stopped too late to test resuming"
    _resume_and_compare(output, shapes, world_size, reference, iteration)
