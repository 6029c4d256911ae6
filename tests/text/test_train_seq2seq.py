"""tools/train_seq2seq.py trains on the built-in task and writes its checkpoint, loss curve and metrics."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from swin_scratch.text.task import EOS, PAD, batch_tensors, make_split, target_of
from swin_scratch.text.train import TrainConfig, train


def test_task_batches_are_padded_variable_length_reversals():
    sources = make_split(5, 3, 10, seed=0)
    assert len({len(s) for s in sources}) > 1
    src, decoder_input, labels = batch_tensors(sources)
    for row, source in enumerate(sources):
        assert labels[row, : len(source) + 1].tolist() == target_of(source)
        assert target_of(source)[-1] == EOS and (labels[row, len(source) + 1 :] == PAD).all()
        assert decoder_input[row, 1 : len(source) + 1].tolist() == labels[row, : len(source)].tolist()


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_short_training_lowers_the_loss_and_writes_outputs(arch, tmp_path):
    config = TrainConfig(arch=arch, steps=100, batch_size=32, val_size=20, num_beams=2, threads=1, lr=3e-3)
    metrics = train(config, tmp_path, progress=False)
    saved = json.loads((tmp_path / f"{arch}_metrics.json").read_text())
    assert saved["exact_match"] == metrics["exact_match"]
    assert torch.load(tmp_path / f"{arch}.pth", weights_only=True)["model"]
    with Image.open(tmp_path / f"{arch}_loss.png") as image:
        assert image.size[0] > 300
    assert metrics["final_loss"] < 0.9 * metrics["initial_loss"]
