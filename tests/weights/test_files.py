"""weights/files.py: every weights format a user brings is read, and nothing in one runs code."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from swin_scratch.weights.files import CheckpointError, read_checkpoint


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


class _StorageThatRunsCode:
    """A storage whose bytes are a pickle with code in it: torch's own _load_from_bytes would run it."""

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (pickle.dumps(_RunsCode()),))


def test_a_plainly_pickled_torch_tensor_pkl_loads_as_mask2formers_converter_writes_it(tmp_path):
    path = tmp_path / "swin_tiny_patch4_window7_224.pkl"
    weights = {"layers.0.blocks.0.attn.qkv.weight": torch.randn(6, 2)}
    with open(path, "wb") as handle:
        pickle.dump({"model": weights, "__author__": "third_party", "matching_heuristics": True}, handle)
    loaded = read_checkpoint(path)
    assert loaded["matching_heuristics"] is True
    key = "layers.0.blocks.0.attn.qkv.weight"
    assert torch.equal(loaded["model"][key], weights[key])


@pytest.mark.parametrize("payload", [_RunsCode(), _StorageThatRunsCode()], ids=["object", "inside-a-storage"])
def test_code_in_a_pkl_is_refused_naming_the_file(tmp_path, payload):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"model": {"x": payload}}, handle)
    with pytest.raises(CheckpointError, match=r"cannot load checkpoint .*evil\.pkl"):
        read_checkpoint(path)


def test_safetensors_file_and_hugging_face_folder_read_the_same_tensors(tmp_path):
    tensors = {"swin.embeddings.norm.weight": torch.randn(4)}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"model_type": "swin"}')
    key = "swin.embeddings.norm.weight"
    for source in (tmp_path / "model.safetensors", tmp_path):
        assert torch.equal(read_checkpoint(source)[key], tensors[key])


def test_a_truncated_safetensors_file_is_one_error_naming_it(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.randn(100)}, str(path))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"cannot load checkpoint .*model\.safetensors.*truncated"):
        read_checkpoint(path)


def test_a_folder_without_weights_names_what_it_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(CheckpointError, match=r"has no weights file .* it holds notes\.txt"):
        read_checkpoint(tmp_path)
