"""Swin-T speed against other implementations, and activation-checkpointing memory.

Peers are timed interleaved in one process (:func:`interleaved_medians`), fp32, inference mode.
Memory is measured per configuration in a fresh subprocess (peak RSS), so allocations of one run
cannot hide inside another's.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable

import torch
from torch import nn

from swin_scratch.benchmark.timing import MEASUREMENT_ENV, interleaved_medians, markdown_table


PeerFactory = Callable[[bool, int, int], dict[str, nn.Module]]


def speed_table(peers: PeerFactory, rounds: int = 10, threads: int = 2) -> str:
    """``peers(backbone, height, width)`` returns the models to time, ours under "swin_scratch".

    The peers (torchvision, timm) are built by the caller: the package never imports them.
    """
    torch.set_num_threads(threads)
    settings = [("224² batch 1", False, 1, 224, 224), ("224² batch 8", False, 8, 224, 224),
                ("backbone 800×1216 batch 1", True, 1, 800, 1216)]
    rows = []
    for label, backbone, batch, height, width in settings:
        torch.manual_seed(0)
        models = peers(backbone, height, width)
        images = torch.rand(batch, 3, height, width)

        def runner(model: nn.Module) -> Callable[[], object]:
            def run():
                with torch.inference_mode():
                    return model(images)
            return run

        medians = interleaved_medians({name: runner(m) for name, m in models.items()}, rounds=rounds)
        others = {name: t for name, t in medians.items() if name != "swin_scratch"}
        fastest_peer = min(others.values()) if others else float("nan")
        row = [label] + [f"{medians[name] * 1000:.1f}" if name in medians else "n/a"
                         for name in ("swin_scratch", "torchvision", "timm")]
        row.append(f"{medians['swin_scratch'] / fastest_peer:.2f}")
        rows.append(row)
    header = ["input", "swin_scratch (ms)", "torchvision (ms)", "timm (ms)", "ours / fastest peer"]
    return markdown_table(header, rows)


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


