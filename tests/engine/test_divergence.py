"""A NaN/inf loss stops training with a message naming the iteration and the last good checkpoint,
and no checkpoint with non-finite weights is written."""
from __future__ import annotations

import re
import subprocess

import pytest
import torch

from helpers.shapes import make_tiny_shapes, train_net_command

pytestmark = pytest.mark.slow


def test_absurd_learning_rate_stops_with_iteration_and_last_good_checkpoint(tmp_path):
    shapes = make_tiny_shapes(tmp_path / "shapes")
    output = tmp_path / "out"
    command = train_net_command(
        output, shapes, "SOLVER.BASE_LR", "1e12", "SOLVER.MAX_ITER", "40", "SOLVER.CHECKPOINT_PERIOD", "1",
        "SOLVER.CLIP_GRADIENTS.ENABLED", "False",
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    match = re.search(r"error: training diverged at iteration (\d+).*Last good checkpoint: (.+?); lower", result.stderr)
    assert match, result.stderr[-2000:]
    assert not (output / "model_final.pth").exists()
    for checkpoint in output.glob("model_*.pth"):
        weights = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()), checkpoint
    assert int(match.group(1)) > 0
    # with a checkpoint every iteration, one was written before the loss blew up
    assert (output / "last_checkpoint").read_text() in match.group(2)
