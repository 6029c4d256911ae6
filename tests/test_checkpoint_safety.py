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

from swin_scratch.checkpoint_io import CheckpointError, atomic_write_bytes
from swin_scratch.detection.checkpoint import SwinCheckpointer


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
    from swin_scratch.detection.checkpoint import SwinCheckpointer
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
