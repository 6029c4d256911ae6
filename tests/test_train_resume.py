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
    assert f"Starting training from iteration {start_iter}" in resumed.stdout + resumed.stderr
    assert start_iter > 0

    # The checkpoint carries what resuming needs: optimizer moments, RNG states, the iteration.
    state = torch.load(interrupted / resumed_from, map_location="cpu", weights_only=True)["trainer"]
    assert state["_trainer"]["optimizer"]["state"], "AdamW moments were not checkpointed"
    assert {"torch", "numpy", "python"} <= set(state["rng"])

    # Same seed, data order continued by the sampler, RNG / optimizer state restored, no loader
    # workers. At the resumed iteration, weights, AdamW state, RNG states and the batch were checked
    # to be bit-identical to the uninterrupted run's, yet the first resumed forward differs in the
    # 3rd-4th significant digit of the loss (a fresh process's first CPU kernels vs. warmed-up
    # ones; not pinned down). AdamW turns that into per-weight differences of up to an lr-sized
    # step per iteration (its update is ~lr * sign), so weights are compared within 2 * lr per
    # resumed iteration. (Known gap: exact equality is the goal and is not reached.)
    expected, actual = _final_weights(tmp_path / "reference"), _final_weights(interrupted)
    assert expected.keys() == actual.keys()
    for key in expected:
        difference = (expected[key].double() - actual[key].double()).abs()
        assert difference.max() <= 2 * 1e-3 * (int(MAX_ITER) - start_iter), (key, float(difference.max()))
