"""Interleaved timing: run each candidate once per round, so drift (thermal, other load) hits all alike."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], rounds: int = 10, warmup: int = 2
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin."""
    for _ in range(warmup):
        for run in candidates.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
