"""How long a detectron2 training run took and how fast it went, read back from its ``OUTPUT_DIR/log.txt``,
printed after the machine line (:mod:`.machine`) so the time says what it was measured on.

Why the log: detectron2's timer hook writes, when a training session ends (normally or by an error),
``Overall training speed: N iterations in H:MM:SS (S s / it)`` (iterations without hooks, the first
few warm-up iterations left out) and ``Total training time: H:MM:SS (H:MM:SS on hooks)`` (wall time,
evaluation and checkpoints included). A run resumed with ``--resume`` has several sessions in one
log; the run is the sessions since the last one that started from iteration 0.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .machine import Machine

_DURATION = r"(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)"
_START = re.compile(r"Starting training from iteration (\d+)")
_SPEED = re.compile(rf"Overall training speed: (\d+) iterations in {_DURATION} \(([\d.]+) s / it\)")
_TOTAL = re.compile(rf"Total training time: {_DURATION}")


class TrainingLogError(ValueError):
    """The folder holds no log of a finished training session; the message names the file."""


@dataclass(frozen=True)
class TrainingSpeed:
    iterations: int  # timed iterations (detectron2 leaves out the first warm-up ones)
    iteration_seconds: float  # time of those iterations, hooks excluded
    total_seconds: float  # wall time of the sessions, evaluation and checkpoints included
    sessions: int  # training sessions that trained and ended (more than one: the run was resumed)
    unfinished_sessions: int  # sessions that started but logged no end (killed): their time is missing

    @property
    def iterations_per_second(self) -> float:
        return self.iterations / self.iteration_seconds if self.iteration_seconds else float("nan")

    def line(self) -> str:
        resumed = f" over {self.sessions} sessions (resumed)" if self.sessions > 1 else ""
        missing = (f"; {self.unfinished_sessions} session(s) ended without a record, their time is not counted"
                   if self.unfinished_sessions else "")
        return (f"Training: {self.iterations} iterations in {format_duration(self.iteration_seconds)} "
                f"({self.iterations_per_second:.2f} it/s, {1 / self.iterations_per_second:.3f} s/it, hooks excluded)"
                f"{resumed}; total training time {format_duration(self.total_seconds)} "
                f"(evaluation and checkpoints included){missing}")


def _seconds(match: re.Match, first_group: int) -> float:
    days, hours, minutes, seconds = (int(match.group(first_group + i) or 0) for i in range(4))
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s"


def _sessions(log_text: str) -> list[list[str]]:
    """The log's lines per training session (each begins with "Starting training from iteration"),
    from the last session that started at iteration 0 on."""
    sessions: list[list[str]] = []
    for line in log_text.splitlines():
        start = _START.search(line)
        if start and start.group(1) == "0":
            sessions = []
        if start:
            sessions.append([])
        if sessions:
            sessions[-1].append(line)
    return sessions


def parse_training_speed(log_text: str) -> TrainingSpeed | None:
    """The speed of the run a detectron2 log ends with; None when no session of it trained and ended.

    A session that trained nothing (``--resume`` of a finished run) is left out, time and all."""
    speeds, totals, unfinished = [], [], 0
    for session in _sessions(log_text):
        speed = next((m for line in session if (m := _SPEED.search(line))), None)
        total = next((m for line in session if (m := _TOTAL.search(line))), None)
        unfinished += total is None
        if speed and total:
            speeds.append(speed)
            totals.append(total)
    if not speeds:
        return None
    return TrainingSpeed(
        iterations=sum(int(m.group(1)) for m in speeds),
        # iterations x "s / it": the duration is logged in whole seconds, the rate to 0.1 ms
        iteration_seconds=sum(int(m.group(1)) * float(m.group(6)) for m in speeds),
        total_seconds=sum(_seconds(m, 1) for m in totals),
        sessions=len(speeds),
        unfinished_sessions=unfinished,
    )


def read_training_speed(output_dir: str | os.PathLike) -> TrainingSpeed:
    """:func:`parse_training_speed` of ``output_dir/log.txt``; TrainingLogError when there is none."""
    log = Path(output_dir) / "log.txt"
    if not log.is_file():
        raise TrainingLogError(f"{log}: no such file; pass the OUTPUT_DIR of a training run")
    speed = parse_training_speed(log.read_text(errors="replace"))
    if speed is None:
        raise TrainingLogError(f"{log}: no training session has finished there (no 'Overall training speed' line)")
    return speed


def training_speed_report(speed: TrainingSpeed, machine: Machine) -> str:
    """The machine line, then the training line: what the demo prints at its end."""
    return f"{machine.line()}\n{speed.line()}"
