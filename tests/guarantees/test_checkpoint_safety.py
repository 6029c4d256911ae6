"""Checkpoints are written atomically and loaded safely (weights_only; clear errors for bad files)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.weights.files import CheckpointError, atomic_write_bytes


def _checkpointer(save_dir: Path, value: float) -> SwinCheckpointer:
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(value)
    return SwinCheckpointer(model, save_dir=str(save_dir))


def test_atomic_write_leaves_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, lambda h: h.write(b"old"))

    def crash(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(target, crash)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]  # no temp file left behind


KILL_MID_SAVE = textwrap.dedent(
    """
    import os, sys, torch
    from torch import nn
    from swin_scratch.detection.checkpointer import SwinCheckpointer
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(2.0)
    real_save = torch.save
    def dying_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        handle.flush()
        os._exit(17)  # the process dies mid-write: no cleanup code runs
    torch.save = dying_save
    SwinCheckpointer(model, save_dir=sys.argv[1]).save("model_0000199")
    """
)


def test_process_killed_mid_save_keeps_previous_checkpoint_loadable(tmp_path):
    _checkpointer(tmp_path, 1.0).save("model_0000099")
    result = subprocess.run([sys.executable, "-c", KILL_MID_SAVE, str(tmp_path)])
    assert result.returncode == 17
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000099.pth"
    assert not (tmp_path / "model_0000199.pth").exists()
    restored = _checkpointer(tmp_path, 0.0)
    restored.resume_or_load("", resume=True)
    assert torch.all(restored.model.weight == 1.0)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth"):
        _checkpointer(tmp_path, 0.0).load(str(tmp_path / "nope.pth"))


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    _checkpointer(tmp_path, 1.0).save("good")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth.*truncated, corrupt"):
        _checkpointer(tmp_path, 0.0).load(str(tmp_path / "cut.pth"))


class _RunsCode:
    """A pickle payload that would create a marker file when unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as handle:
        torch.save({"model": {"weight": torch.zeros(2, 3)}, "payload": _RunsCode(str(marker))}, handle)
    with pytest.raises(CheckpointError, match="evil.pth.*pickled code is refused"):
        _checkpointer(tmp_path, 0.0).load(str(evil))
    assert not marker.exists()
    # the payload is real: unrestricted unpickling would have created the marker
    with open(evil, "rb") as handle:
        torch.load(handle, weights_only=False)
    assert marker.exists()


def _three_checkpoints(save_dir: Path) -> None:
    """model_0000001 (weights 1), model_0000002 (weights 2), model_0000003 (weights 3, the latest)."""
    for value in (1.0, 2.0, 3.0):
        _checkpointer(save_dir, value).save(f"model_{int(value):07d}", iteration=int(value))


def _resume(save_dir: Path, capsys) -> tuple[SwinCheckpointer, str]:
    restored = _checkpointer(save_dir, 0.0)
    restored.resume_or_load("", resume=True)
    return restored, capsys.readouterr().err


def test_resume_falls_back_to_the_newest_readable_checkpoint_when_the_latest_is_truncated(tmp_path, capsys):
    _three_checkpoints(tmp_path)
    latest = tmp_path / "model_0000003.pth"
    latest.write_bytes(latest.read_bytes()[:100])
    restored, err = _resume(tmp_path, capsys)
    assert torch.all(restored.model.weight == 2.0)
    assert restored.resumed_from == str(tmp_path / "model_0000002.pth")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "model_0000003.pth" in lines[0], err
    assert f"resuming from {tmp_path / 'model_0000002.pth'}" in lines[0]


def test_resume_falls_back_when_the_latest_checkpoint_is_missing(tmp_path, capsys):
    _three_checkpoints(tmp_path)
    (tmp_path / "model_0000003.pth").unlink()
    restored, err = _resume(tmp_path, capsys)
    assert torch.all(restored.model.weight == 2.0)
    assert "model_0000003.pth: checkpoint not found" in err and err.count("\n") == 1


def test_resume_with_no_readable_checkpoint_starts_fresh_and_says_so(tmp_path, capsys):
    _three_checkpoints(tmp_path)
    for checkpoint in tmp_path.glob("model_*.pth"):
        checkpoint.write_bytes(b"not a checkpoint")
    restored, err = _resume(tmp_path, capsys)
    assert restored.resumed_from is None
    assert torch.all(restored.model.weight == 0.0)  # nothing loaded: the fresh model as built
    assert err.startswith("warning: no usable checkpoint in") and "starting a fresh run" in err
    assert err.count("\n") == 1


def test_resume_of_an_intact_checkpoint_is_silent(tmp_path, capsys):
    _three_checkpoints(tmp_path)
    restored, err = _resume(tmp_path, capsys)
    assert torch.all(restored.model.weight == 3.0) and err == ""


def test_resume_of_a_folder_written_by_another_model_is_one_error_and_loads_nothing(tmp_path):
    _three_checkpoints(tmp_path)  # nn.Linear(3, 2): weight, bias
    other = nn.Sequential(nn.Linear(3, 2))  # the config changed since: other names (0.weight, 0.bias)
    checkpointer = SwinCheckpointer(other, save_dir=str(tmp_path))
    with pytest.raises(CheckpointError) as raised:
        checkpointer.resume_or_load("", resume=True)
    message = str(raised.value)
    assert message.startswith(f"cannot resume from {tmp_path / 'model_0000003.pth'}: it was written by another model")
    assert "2 of this model's weights missing, e.g. 0.bias" in message and "e.g. bias" in message
    assert "another OUTPUT_DIR" in message and checkpointer.resumed_from is None
    assert not torch.any(other[0].weight == 3.0)  # nothing half-loaded


FULL_DISK_SAVE = textwrap.dedent(
    """
    import resource, sys
    from torch import nn
    from swin_scratch.detection.checkpointer import SwinCheckpointer
    checkpointer = SwinCheckpointer(nn.Linear(1000, 1000), save_dir=sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # the 4 MB checkpoint cannot fit
    checkpointer.save("model_0000199")
    """
)


def test_a_save_that_hits_the_file_size_limit_raises_a_write_error_and_replaces_nothing(tmp_path):
    _checkpointer(tmp_path, 1.0).save("model_0000099")
    result = subprocess.run([sys.executable, "-c", FULL_DISK_SAVE, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "CheckpointWriteError: cannot write checkpoint model_0000199.pth in " + str(tmp_path) in result.stderr
    assert "File too large" in result.stderr and "model_0000099.pth and last_checkpoint are unchanged" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000099.pth"]  # no temp file left
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000099.pth"


@pytest.mark.slow
def test_training_whose_checkpoint_write_fails_stops_with_one_error_line_and_keeps_the_previous(tmp_path):
    import resource

    from helpers.shapes import make_tiny_shapes, train_net_command

    shapes = make_tiny_shapes(tmp_path / "shapes")
    output = tmp_path / "out"

    def train(max_iter: str, *args: str, **popen_kwargs) -> subprocess.CompletedProcess:
        command = train_net_command(output, shapes, "SOLVER.MAX_ITER", max_iter, "SOLVER.CHECKPOINT_PERIOD", "2",
                                    "SOLVER.CHECKPOINT_KEEP", "2", "DATASETS.TEST", "()", args=args)
        return subprocess.run(command, capture_output=True, text=True, timeout=600, **popen_kwargs)

    first = train("6")
    assert first.returncode == 0, first.stderr[-3000:]
    # SOLVER.CHECKPOINT_KEEP 2: of the periodic checkpoints 1, 3 and 5 the last two are kept
    assert sorted(path.name for path in output.glob("model_*.pth")) == [
        "model_0000003.pth", "model_0000005.pth", "model_final.pth"]
    previous = (output / "model_final.pth").read_bytes()

    def disk_full() -> None:  # checkpoints (~4.5 MB) no longer fit; logs do
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    failed = train("8", "--resume", preexec_fn=disk_full)
    assert failed.returncode == 2, failed.stderr[-3000:]
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, failed.stderr[-3000:]
    assert errors[0].startswith(f"error: cannot write checkpoint model_0000007.pth in {output}: File too large")
    assert "Traceback" not in failed.stderr
    assert (output / "last_checkpoint").read_text() == "model_final.pth"
    assert (output / "model_final.pth").read_bytes() == previous
    assert not (output / "model_0000007.pth").exists()
    assert not [path.name for path in output.iterdir() if path.name.endswith(".tmp")], "temp file left"


def test_atomically_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "model.pth", lambda handle: handle.write(b"weights"))
    finally:
        os.umask(old)
    assert (tmp_path / "model.pth").stat().st_mode & 0o777 == 0o644
