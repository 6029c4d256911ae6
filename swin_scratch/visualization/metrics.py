"""Pictures of a detectron2 training run from its ``metrics.json``: losses, learning rate, evaluation APs.

``metrics.json`` is JSON lines, one dict of scalars per logged iteration (``"iteration"``,
``"total_loss"``, ``"loss_cls"``, ``"lr"``...); evaluation results (``"bbox/AP"``, ``"segm/AP50"``...)
appear on the lines of the iterations they were computed at. Figures use ``matplotlib.figure.Figure``
(no pyplot state), so this works headless and does not import torch.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from matplotlib.figure import Figure

EVAL_TASKS = ("bbox", "segm", "keypoints")
EVAL_METRICS = ("AP", "AP50", "AP75")


class MetricsFileError(ValueError):
    """``metrics.json`` is missing, empty or not JSON lines; the message names the file."""


def read_metrics(metrics_json: str | os.PathLike) -> list[dict]:
    """The records of ``metrics_json`` (or of ``<dir>/metrics.json``), in file order.

    A last line that does not parse is skipped: training may be writing it right now.
    """
    path = Path(metrics_json)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise MetricsFileError(f"metrics file not found: {path} (detectron2 writes it to OUTPUT_DIR while training)")
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]
    records = []
    for position, (number, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError as err:
            if position == len(lines) - 1:
                continue
            raise MetricsFileError(f"{path}:{number}: not a JSON object: {err}") from None
        if not isinstance(record, dict):
            raise MetricsFileError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    if not any("iteration" in record for record in records):
        raise MetricsFileError(f"{path} has no metrics (no line with an \"iteration\"); has training logged yet?")
    return records


def metric_series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(iterations, values) of one scalar, sorted by iteration; lines without it, or non-finite, are skipped.

    A resumed run appends to the same file and may log an iteration again: the later line wins.
    """
    by_iteration: dict[int, float] = {}
    for record in records:
        value = record.get(key)
        if "iteration" in record and isinstance(value, (int, float)) and math.isfinite(value):
            by_iteration[int(record["iteration"])] = float(value)
    iterations = sorted(by_iteration)
    return iterations, [by_iteration[it] for it in iterations]


def _keys(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))  # first-seen order


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_losses(records: list[dict], path: Path) -> Path | None:
    loss_keys = [k for k in _keys(records) if k == "total_loss" or k.startswith("loss_")]
    if not loss_keys:
        return None
    fig = Figure(figsize=(8, 4.5), dpi=90)
    ax = fig.subplots()
    for key in loss_keys:
        iterations, values = metric_series(records, key)
        bold = key == "total_loss"
        ax.plot(iterations, values, label=key, linewidth=2.2 if bold else 1.0, color="black" if bold else None)
    if all(v > 0 for key in loss_keys for v in metric_series(records, key)[1]):
        ax.set_yscale("log")  # losses fall over orders of magnitude; the log scale keeps the tail readable
    ax.set(xlabel="iteration", ylabel="loss", title="training losses")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def plot_learning_rate(records: list[dict], path: Path) -> Path | None:
    iterations, values = metric_series(records, "lr")
    if not iterations:
        return None
    fig = Figure(figsize=(8, 3.5), dpi=90)
    ax = fig.subplots()
    ax.plot(iterations, values)
    ax.set(xlabel="iteration", ylabel="learning rate", title="learning rate schedule")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_eval_ap(records: list[dict], path: Path) -> Path | None:
    """One panel per task (bbox, segm...) with AP, AP50 and AP75 (0-100) against iteration."""
    tasks = [t for t in EVAL_TASKS if metric_series(records, f"{t}/AP")[0]]
    if not tasks:
        return None
    fig = Figure(figsize=(5 * len(tasks), 4), dpi=90)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        for metric in EVAL_METRICS:
            iterations, values = metric_series(records, f"{task}/{metric}")
            if iterations:
                ax.plot(iterations, values, marker="o", label=f"{metric} (last {values[-1]:.1f})")
        ax.set(xlabel="iteration", ylabel="AP (0-100)", title=f"{task} evaluation", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_metrics(metrics_json: str | os.PathLike, output_dir: str | os.PathLike) -> list[Path]:
    """Write ``losses.png``, ``lr.png`` and (when evaluations were logged) ``eval_ap.png``; return their paths."""
    records = read_metrics(metrics_json)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [
        plot_losses(records, output_dir / "losses.png"),
        plot_learning_rate(records, output_dir / "lr.png"),
        plot_eval_ap(records, output_dir / "eval_ap.png"),
    ]
    return [path for path in written if path is not None]
