"""Training survives SIGKILL and preemption: --resume continues from the last checkpoint and ends
bit-identical (weights and optimizer state) to an uninterrupted run."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch

from helpers.shapes import make_tiny_shapes, train_net_command

pytestmark = pytest.mark.slow

MAX_ITER = 8
# Checkpoints after iterations 2 and 5 (detectron2 saves at (iteration + 1) % period == 0).
# Drop-path on, and a warm-up that is still running when training resumes (iteration-keyed LR).
RUN_OPTIONS = ("SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", "3",
               "MODEL.SWIN.DROP_PATH_RATE", "0.2", "SOLVER.WARMUP_ITERS", "6")


def _command(output_dir: Path, shapes_root: Path, num_workers: int, *args: str) -> list[str]:
    return train_net_command(output_dir, shapes_root, *RUN_OPTIONS, "DATALOADER.NUM_WORKERS", str(num_workers),
                             args=args)


def _run(output_dir: Path, shapes_root: Path, num_workers: int, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(_command(output_dir, shapes_root, num_workers, *args), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _start_and_wait_for(output_dir: Path, shapes_root: Path, num_workers: int, ready: Path) -> subprocess.Popen:
    """Start training and return once ``ready`` exists (training still running)."""
    process = subprocess.Popen(_command(output_dir, shapes_root, num_workers), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ready.exists():
        assert process.poll() is None, f"training ended before {ready.name} was written"
        assert time.time() < deadline, f"no {ready.name} after 300 s"
        time.sleep(0.02)
    return process


def assert_bit_identical(expected: dict, actual: dict, where: str = "") -> None:
    """Every tensor equal (torch.equal), every other value ==, the same keys at every level."""
    assert expected.keys() == actual.keys(), where
    for key in expected:
        left, right = expected[key], actual[key]
        if isinstance(left, dict):
            assert_bit_identical(left, right, f"{where}/{key}")
        elif torch.is_tensor(left):
            assert torch.equal(left, right), f"{where}/{key} differs"
        else:
            assert left == right, f"{where}/{key}: {left!r} != {right!r}"


def assert_same_final_state(reference: Path, resumed: Path) -> None:
    expected = torch.load(reference / "model_final.pth", map_location="cpu", weights_only=True)
    actual = torch.load(resumed / "model_final.pth", map_location="cpu", weights_only=True)
    assert_bit_identical(expected["model"], actual["model"], "model")
    optimizer = expected["trainer"]["_trainer"]["optimizer"]
    assert optimizer["state"], "AdamW moments were not checkpointed"
    assert_bit_identical(optimizer, actual["trainer"]["_trainer"]["optimizer"], "optimizer")
    assert_bit_identical(expected["trainer"]["rng"], actual["trainer"]["rng"], "rng")


@contextlib.contextmanager
def _built_once_per_session(tmp_path_factory, name: str) -> Iterator[tuple[Path, bool]]:
    """A folder shared by every pytest-xdist worker of the session; yields (folder, already built).

    The tests of this module may run on different workers, and each would otherwise train its own
    reference; a lock lets the first one build it and the others reuse it.
    """
    basetemp = tmp_path_factory.getbasetemp()
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / f"{name}.done"
        yield shared / name, done.exists()
        done.touch()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    with _built_once_per_session(tmp_path_factory, "train_resume_shapes") as (root, built):
        return root if built else make_tiny_shapes(root)


@pytest.fixture(scope="module")
def reference(shapes, tmp_path_factory) -> Path:
    """An uninterrupted run without loader workers (batches do not depend on the worker count)."""
    with _built_once_per_session(tmp_path_factory, "train_resume_reference") as (output, built):
        if not built:
            _run(output, shapes, 0)
        return output


def _resume_and_check(output: Path, shapes: Path, num_workers: int, reference: Path) -> subprocess.CompletedProcess:
    resumed_from = (output / "last_checkpoint").read_text()
    assert not (output / "model_final.pth").exists(), "interrupted too late to test resuming"
    resumed = _run(output, shapes, num_workers, "--resume")
    start_iter = int(resumed_from.removeprefix("model_").removesuffix(".pth")) + 1
    assert 0 < start_iter < MAX_ITER
    assert f"Starting training from iteration {start_iter}" in resumed.stdout + resumed.stderr
    assert_same_final_state(reference, output)
    return resumed


@pytest.mark.parametrize("num_workers", [0, 2])
def test_sigkilled_training_resumes_bit_identical_to_an_uninterrupted_run(shapes, reference, tmp_path, num_workers):
    output = tmp_path / "interrupted"
    process = _start_and_wait_for(output, shapes, num_workers, output / "last_checkpoint")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    _resume_and_check(output, shapes, num_workers, reference)


SECOND_SIGNAL_DURING_SAVE = """
import os, signal, sys
import swin_scratch.detection.checkpointer as checkpoint_module
import swin_scratch.engine.interruptions as interruptions

signals_seen = []
real_handle = interruptions.StopRequest._handle
real_atomic_write = checkpoint_module.atomic_write_bytes

def counting_handle(self, signum, frame):
    signals_seen.append(signum)
    real_handle(self, signum, frame)

def write_with_a_second_signal(path, write):
    def interrupted_write(handle):
        handle.write(b"")
        if len(signals_seen) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the second signal arrives while the checkpoint is written
        write(handle)
    real_atomic_write(path, interrupted_write)

interruptions.StopRequest._handle = counting_handle
checkpoint_module.atomic_write_bytes = write_with_a_second_signal

if __name__ == "__main__":
    from swin_scratch.engine.train import main
    status = main(sys.argv[1:])
    assert len(signals_seen) == 2, signals_seen
    sys.exit(status)
"""

PREEMPTED = re.compile(r"^SIGTERM: stopped at iteration (\d+), checkpoint saved to (\S+); resume with: (python .+)$",
                       re.MULTILINE)


def test_sigterm_checkpoints_the_current_iteration_exits_0_and_resumes_bit_identical(shapes, reference, tmp_path):
    output = tmp_path / "preempted"
    script = tmp_path / "second_signal_during_save.py"
    script.write_text(SECOND_SIGNAL_DURING_SAVE)
    command = _command(output, shapes, 2)
    process = subprocess.Popen([command[0], str(script), *command[2:]], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (output / "last_checkpoint").exists():
        assert process.poll() is None and time.time() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]

    match = PREEMPTED.search(stderr)
    assert match, stderr[-3000:]
    checkpoint = Path(match.group(2))
    assert checkpoint.parent == output and checkpoint.name == f"model_{int(match.group(1)):07d}.pth"
    assert (output / "last_checkpoint").read_text() == checkpoint.name
    assert match.group(3).startswith("python ") and " --resume " in match.group(3)
    assert not [path.name for path in output.iterdir() if path.name.endswith(".tmp")], "temp file left"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["iteration"] == int(match.group(1))
    _resume_and_check(output, shapes, 2, reference)


def test_resume_skips_a_truncated_latest_checkpoint_and_still_ends_bit_identical(shapes, reference, tmp_path):
    output = tmp_path / "damaged"
    output.mkdir()
    for name in ("model_0000002.pth", "model_0000005.pth"):  # the default SOLVER.CHECKPOINT_KEEP 0 keeps both
        (output / name).write_bytes((reference / name).read_bytes())
    latest = output / "model_0000005.pth"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # cut off mid-write by a crash
    (output / "last_checkpoint").write_text(latest.name)

    resumed = _run(output, shapes, 0, "--resume")
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "model_0000005.pth" in warnings[0], resumed.stderr[-3000:]
    assert f"resuming from {output / 'model_0000002.pth'} instead" in warnings[0]
    assert "Starting training from iteration 3" in resumed.stdout + resumed.stderr
    assert_same_final_state(reference, output)
