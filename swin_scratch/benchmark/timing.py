"""Interleaved timing: run each candidate once per round, so drift (thermal, other load) hits all alike."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], rounds: int = 10, warmup: int = 2,
    synchronize: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin.

    ``synchronize`` (``torch.cuda.synchronize`` for GPU work) is called before and after each timed
    call, so a sample is the call's device time, not the time to queue its kernels.
    """
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        for run in candidates.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def synchronizer(device: str) -> Callable[[], object] | None:
    """What to pass as ``synchronize`` for work on ``device``: None on the CPU (calls return when done)."""
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ``--markdown`` given without a file: the report goes into its section of the machine's file
MACHINE_FILE = "machine"
MACHINE_FILES_DIR = Path("docs/benchmarks")


def emit_report(report: str, markdown: Path | str | None = None, machine=None, section: str | None = None,
                command: str | None = None) -> Path | None:
    """Print a benchmark report; with ``markdown`` also write it there whole, so docs paste it unedited.

    ``markdown == MACHINE_FILE`` (what ``--markdown`` without a value gives): the report, under the command
    that made it, replaces its ``section`` of ``docs/benchmarks/<machine.slug()>.md``, one file per machine
    that gathers every benchmark's latest output. Returns the file written, if any.
    """
    print(report)
    if markdown is None:
        return None
    if str(markdown) == MACHINE_FILE:
        if machine is None or section is None:
            raise ValueError("a machine file section needs the machine and the section's name")
        path = MACHINE_FILES_DIR / f"{machine.slug()}.md"
        write_section(path, section, f"`{command or shell_command()}`\n\n{report}",
                      title=f"# Benchmarks on {machine.slug()}")
        return path
    markdown = Path(markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(report)
    return markdown


def write_section(path: Path, section: str, body: str, title: str) -> None:
    """Replace (or append) ``## section`` of ``path``: the text between its begin/end markers."""
    begin, end = f"<!-- begin: {section} -->", f"<!-- end: {section} -->"
    block = f"{begin}\n## {section}\n\n{body.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else f"{title}\n\nEach section is one tool's output, pasted whole.\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def shell_command() -> str:
    """This process's command line as a user types it: ``python tools/x.py --args`` (quoted for a shell)."""
    import shlex
    import sys

    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB), from /proc's VmHWM.

    Not ``getrusage``'s ru_maxrss: Linux carries that across fork + exec, so a fresh subprocess
    would report its parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


# glibc keeps freed heap chunks mapped, so RSS would report the allocator's high-water mark rather
# than the peak of live tensors; serving large blocks with mmap returns them to the OS on free.
MEASUREMENT_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
