"""Train a seq2seq model on the reversal task; evaluate exact-match accuracy with beam search."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from swin_scratch.text.generation import GenerationConfig, generate
from swin_scratch.text.lstm_seq2seq import LSTMSeq2Seq
from swin_scratch.text.steppers import stepper_for
from swin_scratch.text.task import BOS, EOS, PAD, VOCAB_SIZE, batch_tensors, make_split, target_of
from swin_scratch.text.transformer import Transformer


@dataclass
class TrainConfig:
    arch: str = "transformer"  # or "lstm"
    steps: int = 5000
    batch_size: int = 64
    lr: float = 1e-3
    min_length: int = 3
    max_length: int = 10
    train_size: int = 20000
    val_size: int = 500
    num_beams: int = 4
    seed: int = 0
    threads: int = 2


def build_model(arch: str) -> nn.Module:
    if arch == "transformer":
        return Transformer(VOCAB_SIZE, VOCAB_SIZE, embed_dim=64, num_heads=4, num_encoder_layers=2,
                           num_decoder_layers=2, dim_feedforward=128, dropout=0.0, max_len=64)
    if arch == "lstm":
        return LSTMSeq2Seq(VOCAB_SIZE, hidden_size=128)
    raise ValueError(f"--arch must be 'transformer' or 'lstm', got {arch!r}")


def exact_match(model: nn.Module, sources: list[list[int]], num_beams: int, batch_size: int = 100) -> float:
    model.eval()
    config = GenerationConfig(num_beams=num_beams, max_length=max(map(len, sources)) + 2,
                              bos_id=BOS, eos_id=EOS, pad_id=PAD)
    correct = 0
    for start in range(0, len(sources), batch_size):
        chunk = sources[start : start + batch_size]
        src, _, _ = batch_tensors(chunk)
        outputs = generate(stepper_for(model), src, config)
        correct += sum(out == target_of(s) for out, s in zip(outputs, chunk))
    model.train()
    return correct / len(sources)


def train(config: TrainConfig, output_dir: str | Path, progress: bool = True) -> dict:
    """Train, evaluate on the held-out split, write checkpoint + loss-curve PNG + metrics JSON."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train_split = make_split(config.train_size, config.min_length, config.max_length, seed=config.seed)
    val_split = make_split(config.val_size, config.min_length, config.max_length, seed=config.seed + 1)
    model = build_model(config.arch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    losses, start = [], time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    bar = tqdm(range(config.steps), desc=f"train {config.arch}", disable=not progress)
    for _ in bar:
        picks = torch.randint(0, len(train_split), (config.batch_size,), generator=generator).tolist()
        src, decoder_input, labels = batch_tensors([train_split[i] for i in picks])
        logits = model(src, decoder_input)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    train_seconds = time.perf_counter() - start
    accuracy = exact_match(model, val_split, config.num_beams)
    total_seconds = time.perf_counter() - start
    torch.save({"model": model.state_dict(), "config": asdict(config)}, output_dir / f"{config.arch}.pth")
    plot = _plot_losses(losses, output_dir / f"{config.arch}_loss.png", config.arch)
    metrics = {"arch": config.arch, "exact_match": accuracy, "train_seconds": round(train_seconds, 1),
               "total_seconds": round(total_seconds, 1), "initial_loss": losses[0], "final_loss": losses[-1],
               "loss_curve": str(plot)}
    (output_dir / f"{config.arch}_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _plot_losses(losses: list[float], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_title(f"{title}: reverse a digit string")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
