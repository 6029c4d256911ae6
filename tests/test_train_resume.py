"""Training survives SIGKILL: --resume continues from the last checkpoint and ends where an
uninterrupted run ends."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from shapes_helpers import make_tiny_shapes, train_net_command

pytestmark = pytest.mark.slow

MAX_ITER = "12"
CHECKPOINT_PERIOD = "4"


def _final_weights(output_dir):
    return torch.load(output_dir / "model_final.pth", map_location="cpu", weights_only=True)["model"]


def _run(output_dir, shapes_root, *args):
    command = train_net_command(
        output_dir, shapes_root, "SOLVER.MAX_ITER", MAX_ITER, "SOLVER.CHECKPOINT_PERIOD", CHECKPOINT_PERIOD, args=args
    )
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_sigkilled_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    shapes = make_tiny_shapes(tmp_path / "shapes")
    reference = _run(tmp_path / "reference", shapes)
    assert reference.returncode == 0, reference.stderr[-3000:]

    interrupted = tmp_path / "interrupted"
    command = train_net_command(
        interrupted, shapes, "SOLVER.MAX_ITER", MAX_ITER, "SOLVER.CHECKPOINT_PERIOD", CHECKPOINT_PERIOD
    )
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_checkpoint = interrupted / "model_0000003.pth"
    deadline = time.time() + 300
    while not (interrupted / "last_checkpoint").exists() and time.time() < deadline:
        assert process.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert first_checkpoint.exists()
    assert not (interrupted / "model_final.pth").exists(), "killed too late to test resuming"
    resumed_from = (interrupted / "last_checkpoint").read_text()

    resumed = _run(interrupted, shapes, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    start_iter = int(resumed_from.removeprefix("model_").removesuffix(".pth")) + 1
    assert f"Starting training from iteration {start_iter}" in resumed.stderr
    assert start_iter > 0

    # Same seed, data order continued by the sampler, RNG states restored from the checkpoint,
    # no loader workers: the resumed run's final weights equal the uninterrupted run's exactly.
    expected, actual = _final_weights(tmp_path / "reference"), _final_weights(interrupted)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
