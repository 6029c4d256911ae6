"""Swin-T speed against other implementations, and activation-checkpointing memory.

Peers are timed interleaved in one process (:func:`interleaved_medians`), inference mode, each in its
precision (fp32, or bf16/fp16 under autocast), after the machine line of :mod:`.machine`, on that
machine's device: the CPU, or the GPU (synchronized around each timed call).
Memory is measured per configuration in a fresh subprocess (peak RSS), so allocations of one run
cannot hide inside another's.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from swin_scratch.benchmark.machine import SWIN_T_224_GFLOP, Machine
from swin_scratch.benchmark.timing import MEASUREMENT_ENV, interleaved_medians, markdown_table, synchronizer
from swin_scratch.precision import autocast


@dataclass(frozen=True)
class Candidate:
    """A model to time and the precision it runs in (fp32 as is, bf16/fp16 under autocast)."""

    model: nn.Module
    precision: str = "fp32"


# peers(backbone, height, width) -> {name: Candidate}; ours are named "ours ...", timm's "timm ...".
PeerFactory = Callable[[bool, int, int], dict[str, Candidate]]

SETTINGS = (("224² batch 1", False, 1, 224, 224), ("224² batch 8", False, 8, 224, 224),
            ("backbone 800×1216 batch 1", True, 1, 800, 1216))
# On a GPU batches 1 and 8 are bound by kernel launches; batch 64 shows the throughput.
CUDA_SETTINGS = SETTINGS[:2] + (("224² batch 64", False, 64, 224, 224),) + SETTINGS[2:]

SPEED_HEADER = ["input", "implementation", "ms / forward", "ms / image", "% of floor", "÷ timm best (same precision)"]


def gflop_per_image(height: int, width: int) -> float:
    """Swin-T's forward cost: 9.0 GFLOP at 224², linear in pixels (window attention is linear in tokens)."""
    return SWIN_T_224_GFLOP * height * width / (224 * 224)


def speed_rows(peers: PeerFactory, machine: Machine, rounds: int = 10, settings=SETTINGS) -> list[list[str]]:
    """One row per (input, implementation): ms per forward, ms per image, % of the machine's floor,
    and the time relative to timm's best run at the same precision. Runs on ``machine.device``
    (the peers' models must be there already)."""
    rows = []
    ms = "{:.3f}" if machine.device == "cuda" else "{:.1f}"  # GPU times are fractions of a millisecond
    for label, backbone, batch, height, width in settings:
        torch.manual_seed(0)
        candidates = peers(backbone, height, width)
        images = torch.rand(batch, 3, height, width).to(machine.device)
        runners = {name: _runner(c, images, machine.device) for name, c in candidates.items()}
        medians = interleaved_medians(runners, rounds=rounds, synchronize=synchronizer(machine.device))
        gflop = gflop_per_image(height, width)
        for name, candidate in candidates.items():
            per_image_ms = medians[name] * 1000 / batch
            timm_best = _fastest(medians, candidates, "timm", candidate.precision)
            rows.append([
                label, name, ms.format(medians[name] * 1000), ms.format(per_image_ms),
                f"{machine.percent_of_floor(per_image_ms, gflop, candidate.precision):.0f}%",
                f"{medians[name] / timm_best:.2f}" if timm_best else "n/a",
            ])
    return rows


def _fastest(medians: dict[str, float], candidates: dict[str, Candidate], prefix: str, precision: str) -> float | None:
    times = [t for name, t in medians.items() if name.startswith(prefix) and candidates[name].precision == precision]
    return min(times) if times else None


def _runner(candidate: Candidate, images: torch.Tensor, device: str = "cpu") -> Callable[[], object]:
    def run():
        with torch.inference_mode(), autocast(candidate.precision, device):
            return candidate.model(images)
    return run


def speed_report(peers: PeerFactory, machine: Machine, rounds: int = 10, settings=SETTINGS) -> str:
    """The machine line, then the table, as Markdown (what tools/benchmark.py prints and writes)."""
    table = markdown_table(SPEED_HEADER, speed_rows(peers, machine, rounds, settings))
    how = ("CUDA inference (torch.inference_mode, torch.cuda.synchronize around each timed call; fp32 with TF32 off)"
           if machine.device == "cuda" else "CPU inference (torch.inference_mode)")
    return (f"{machine.line()}\n\n{how}, median of {rounds} interleaved rounds; "
            f"% of floor = (GFLOP ÷ measured GEMM peak of that precision) ÷ measured time.\n\n{table}\n")


def peak_memory_mib(use_checkpoint: bool, size: int = 1024, threads: int = 2) -> float:
    """Peak RSS of one Swin-T backbone forward+backward at size x size, in a fresh process."""
    code = (
        "import torch\n"
        "from swin_scratch.benchmark.timing import peak_rss_mib\n"
        f"torch.set_num_threads({threads})\n"
        "from swin_scratch.models import swin_tiny\n"
        f"m = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3), use_checkpoint={use_checkpoint}).train()\n"
        f"x = torch.rand(1, 3, {size}, {size})\n"
        "base = peak_rss_mib()\n"
        "sum(o.mean() for o in m(x)).backward()\n"
        "print(peak_rss_mib() - base)\n"
    )
    env = {**os.environ, **MEASUREMENT_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def memory_table(size: int = 1024) -> str:
    plain, checkpointed = peak_memory_mib(False, size), peak_memory_mib(True, size)
    rows = [["use_checkpoint=False", f"{plain:.0f}"], ["use_checkpoint=True", f"{checkpointed:.0f}"],
            ["reduction", f"{100 * (1 - checkpointed / plain):.0f}%"]]
    return markdown_table([f"Swin-T backbone fwd+bwd {size}×{size}, CPU", "peak RSS growth (MiB)"], rows)


