"""Swin-T / SwinV2-T speed against other implementations, the goals those timings are held to, backbone
time per megapixel, where the time goes (profile), and activation-checkpointing memory.

Peers are timed interleaved in one process (:func:`interleaved_medians`), inference mode, each in its
precision (fp32, or bf16/fp16 under autocast), after the machine line of :mod:`.machine`, on that
machine's device: the CPU, or the GPU (synchronized around each timed call).
Memory is measured per configuration in a fresh subprocess (peak RSS), so allocations of one run
cannot hide inside another's.
"""
from __future__ import annotations

import collections
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from swin_scratch.benchmark.machine import SWIN_T_224_GFLOP, Machine, describe_load
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
# SwinV2-T's classification size is 256² (window 8), as in torchvision's and timm's swinv2_tiny_window8_256
V2_SETTINGS = (("256² batch 1", False, 1, 256, 256), ("256² batch 8", False, 8, 256, 256),
               ("backbone 800×1216 batch 1", True, 1, 800, 1216))
V2_CUDA_SETTINGS = V2_SETTINGS[:2] + (("256² batch 64", False, 64, 256, 256),) + V2_SETTINGS[2:]

# The speed goals of issue 25 (floors the tables are compared with, never asserted).
RATIO_GOAL = 0.85  # ours best ÷ timm best, each precision
FLOOR_GOALS = {"fp32": 75.0, "bf16": 60.0}  # % of the GEMM floor, at batch 8 and 800×1216
COMPILE_GOAL = 1.3  # our eager ÷ our compiled

SPEED_HEADER = ["input", "implementation", "ms / forward", "ms / image", "% of floor", "÷ timm best (same precision)"]


def gflop_per_image(height: int, width: int) -> float:
    """Swin-T's forward cost: 9.0 GFLOP at 224², linear in pixels (window attention is linear in tokens)."""
    return SWIN_T_224_GFLOP * height * width / (224 * 224)


@dataclass(frozen=True)
class Timing:
    """One implementation's median on one input."""

    label: str  # the input, e.g. "224² batch 8"
    name: str  # the implementation, e.g. "ours eager"
    precision: str
    batch: int
    seconds: float  # median per forward
    gflop: float  # per image
    peak_gflops: float | None = None  # the GEMM peak of this precision timed in the same rounds (median)

    def percent_of_floor(self, machine: Machine) -> float:
        """100 = as fast as the GEMM peak allows: the peak timed in the same interleaved rounds when there is
        one (load that slows the models slows it alike), else the machine line's."""
        per_image_ms = self.seconds * 1000 / self.batch
        if self.peak_gflops is None:
            return machine.percent_of_floor(per_image_ms, self.gflop, self.precision)
        return 100 * self.gflop / self.peak_gflops * 1000 / per_image_ms


def time_settings(peers: PeerFactory, machine: Machine, rounds: int = 10, settings=SETTINGS) -> list[Timing]:
    """Every peer on every input, interleaved per input, on ``machine.device`` (the peers' models must be
    there already)."""
    timings = []
    for label, backbone, batch, height, width in settings:
        torch.manual_seed(0)
        candidates = peers(backbone, height, width)
        images = torch.rand(batch, 3, height, width).to(machine.device)
        runners = {name: _runner(c, images, machine.device) for name, c in candidates.items()}
        gemms = {precision: _gemm_runner(precision, machine.device)
                 for precision in dict.fromkeys(c.precision for c in candidates.values())
                 if precision in machine.gemm_gflops}
        runners.update({f"(GEMM {precision})": run for precision, (run, _) in gemms.items()})
        medians = interleaved_medians(runners, rounds=rounds, synchronize=synchronizer(machine.device))
        peaks = {precision: flop / medians[f"(GEMM {precision})"] / 1e9 for precision, (_, flop) in gemms.items()}
        timings += [Timing(label, name, candidate.precision, batch, medians[name], gflop_per_image(height, width),
                           peaks.get(candidate.precision)) for name, candidate in candidates.items()]
    return timings


GEMM_SIZE, GEMM_REPEATS = 1024, 4


def _gemm_runner(precision: str, device: str) -> tuple[Callable[[], object], float]:
    """A size³ matrix product in ``precision``, repeated: the GEMM peak timed among the models (and its FLOPs)."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device).to(dtype)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device).to(dtype)

    def run():
        for _ in range(GEMM_REPEATS):
            torch.mm(a, b)
    return run, 2 * GEMM_SIZE**3 * GEMM_REPEATS


def speed_rows(peers: PeerFactory | Sequence[Timing], machine: Machine, rounds: int = 10,
               settings=SETTINGS) -> list[list[str]]:
    """One row per (input, implementation): ms per forward, ms per image, % of the machine's floor,
    and the time relative to timm's best run at the same precision. ``peers`` is timed first
    (:func:`time_settings`) unless it is already a list of timings."""
    timings = time_settings(peers, machine, rounds, settings) if callable(peers) else list(peers)
    ms = "{:.3f}" if machine.device == "cuda" else "{:.1f}"  # GPU times are fractions of a millisecond
    rows = []
    for timing in timings:
        timm_best = _fastest(timings, timing.label, "timm", timing.precision)
        rows.append([
            timing.label, timing.name, ms.format(timing.seconds * 1000),
            ms.format(timing.seconds * 1000 / timing.batch),
            f"{timing.percent_of_floor(machine):.0f}%",
            f"{timing.seconds / timm_best.seconds:.2f}" if timm_best else "n/a",
        ])
    return rows


def _fastest(timings: Sequence[Timing], label: str, prefix: str, precision: str) -> Timing | None:
    """The fastest of ``prefix``'s implementations on input ``label`` at ``precision`` (eager or compiled)."""
    mine = [t for t in timings if t.label == label and t.name.startswith(prefix) and t.precision == precision]
    return min(mine, key=lambda t: t.seconds) if mine else None


def goal_rows(timings: Sequence[Timing], machine: Machine) -> list[list[str]]:
    """The speed goals (not asserted: printed with what was measured): ours best ÷ timm best ≤ 0.85 per input
    and precision; our best ≥ 75 % (fp32) / 60 % (bf16) of the GEMM floor at batch 8 and the 800×1216
    backbone; our compiled run ≥ 1.3× our eager one."""
    rows = []
    labels = list(dict.fromkeys(t.label for t in timings))
    for label in labels:
        for precision in ("fp32", "bf16", "fp16"):
            ours, timm_best = _fastest(timings, label, "ours", precision), _fastest(timings, label, "timm", precision)
            if ours and timm_best:
                ratio = ours.seconds / timm_best.seconds
                rows.append([f"ours best ÷ timm best ≤ {RATIO_GOAL} ({precision})", label,
                             f"{ratio:.2f} ({ours.name} ÷ {timm_best.name})", _met(ratio <= RATIO_GOAL)])
            goal = FLOOR_GOALS.get(precision)
            if ours and goal and ("batch 8" in label or "800×1216" in label):
                share = ours.percent_of_floor(machine)
                rows.append([f"ours ≥ {goal:.0f} % of the {precision} GEMM floor", label,
                             f"{share:.0f} % ({ours.name})", _met(share >= goal)])
        eager = [t for t in timings if t.label == label and t.name == "ours eager"]
        compiled = [t for t in timings if t.label == label and t.name == "ours compiled"]
        if eager and compiled:
            speedup = eager[0].seconds / compiled[0].seconds
            rows.append([f"ours compiled ≥ {COMPILE_GOAL}× ours eager", label, f"{speedup:.2f}×",
                         _met(speedup >= COMPILE_GOAL)])
    return rows


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _runner(candidate: Candidate, images: torch.Tensor, device: str = "cpu") -> Callable[[], object]:
    def run():
        with torch.inference_mode(), autocast(candidate.precision, device):
            return candidate.model(images)
    return run


def speed_report(peers: PeerFactory, machine: Machine, rounds: int = 10, settings=SETTINGS) -> str:
    """The machine line, the table, then the goals, as Markdown (what tools/benchmark.py prints and writes)."""
    timings = time_settings(peers, machine, rounds, settings)
    table = markdown_table(SPEED_HEADER, speed_rows(timings, machine))
    how = ("CUDA inference (torch.inference_mode, torch.cuda.synchronize around each timed call; fp32 with TF32 off)"
           if machine.device == "cuda" else "CPU inference (torch.inference_mode)")
    goals = goal_rows(timings, machine)
    goal_table = ("\n\nGoals (issue 25; floors to compare with, not asserted)\n\n"
                  + markdown_table(["goal", "input", "measured", "status"], goals)) if goals else ""
    peaks = {}
    for timing in timings:
        if timing.peak_gflops is not None:
            peaks.setdefault(timing.label, {})[timing.precision] = timing.peak_gflops
    peak_text = "; ".join(f"{label}: " + ", ".join(f"{p} {v:.0f}" for p, v in by_precision.items())
                          for label, by_precision in peaks.items())
    floor = (f"% of floor = (GFLOP ÷ GEMM peak of that precision) ÷ measured time, with the peak timed in the "
             f"same interleaved rounds ({GEMM_SIZE}³ matmul, median; GFLOP/s: {peak_text})" if peaks else
             "% of floor = (GFLOP ÷ measured GEMM peak of that precision) ÷ measured time")
    return (f"{machine.line()}\n\n{how}, median of {rounds} interleaved rounds; {floor}.\n\n{table}"
            f"{goal_table}\n\nload average (1 min) at the end: {describe_load()}\n")


# backbone inputs whose cost per pixel should not change: three sizes at batch 1, and batches at 800×1216
MEGAPIXEL_SETTINGS = ((512, 768, 1), (800, 1216, 1), (1333, 2000, 1), (800, 1216, 2), (800, 1216, 4))
SPREAD_GOAL = 10.0  # %: (slowest ÷ fastest ms per megapixel) - 1


def megapixel_report(backbones: dict[str, nn.Module], machine: Machine, rounds: int = 3,
                     settings=MEGAPIXEL_SETTINGS, precision: str = "fp32") -> str:
    """Each backbone's time per megapixel (of image, batch included) at several sizes and batches, interleaved
    per input: Swin's cost is linear in pixels, so a flat column means no per-size or per-batch overhead."""
    medians: dict[tuple, dict[str, float]] = {}
    for height, width, batch in settings:
        torch.manual_seed(0)
        images = torch.rand(batch, 3, height, width).to(machine.device)
        runners = {name: _runner(Candidate(model, precision), images, machine.device)
                   for name, model in backbones.items()}
        medians[(height, width, batch)] = interleaved_medians(runners, rounds=rounds, warmup=1,
                                                              synchronize=synchronizer(machine.device))
    reference = (800, 1216, 1) if (800, 1216, 1) in medians else next(iter(medians))
    rows, spreads = [], []
    for name in backbones:
        per_megapixel = {}
        for (height, width, batch), times in medians.items():
            per_megapixel[(height, width, batch)] = times[name] * 1000 / (batch * height * width / 1e6)
        for (height, width, batch), value in per_megapixel.items():
            rows.append([name, f"{height}×{width}", batch, f"{medians[(height, width, batch)][name] * 1000:.0f}",
                         f"{value:.0f}", f"{value / per_megapixel[reference]:.2f}"])
        spread = 100 * (max(per_megapixel.values()) / min(per_megapixel.values()) - 1)
        spreads.append([f"{name}: ms per megapixel flat within {SPREAD_GOAL:.0f} %", f"{spread:.0f} %",
                        _met(spread <= SPREAD_GOAL)])
    return (f"{machine.line()}\n\nBackbone inference ({precision}, torch.inference_mode), median of {rounds} "
            f"interleaved rounds per input\n\n"
            + markdown_table(["backbone", "input", "batch", "ms / forward", "ms per megapixel",
                              f"÷ {reference[0]}×{reference[1]} batch {reference[2]}"], rows)
            + "\n\n" + markdown_table(["goal (not asserted)", "slowest ÷ fastest - 1", "status"], spreads)
            + f"\n\nload average (1 min) at the end: {describe_load()}\n")


def profile_report(model: nn.Module, images: torch.Tensor, machine: Machine, title: str, runs: int = 2,
                   top: int = 15, precision: str = "fp32") -> str:
    """Where one forward's time goes: the top (op, calling line of the package) pairs by self CPU time,
    summed over ``runs`` forwards after a warm-up and divided by ``runs``."""
    with torch.inference_mode(), autocast(precision, machine.device):
        model(images)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_stack=True) as prof:
            for _ in range(runs):
                model(images)
    self_ms: dict[tuple[str, str], float] = collections.Counter()
    calls: dict[tuple[str, str], int] = collections.Counter()
    for event in prof.events():
        if event.self_cpu_time_total <= 0 or ".py(" in event.name or event.name.startswith(("<", "nn.Module")):
            continue  # Python frames and modules are the call sites, not ops
        key = (event.name, _calling_site(event))
        self_ms[key] += event.self_cpu_time_total / 1000 / runs
        calls[key] += 1
    total = sum(self_ms.values())
    rows = [[f"`{op}`", f"{ms:.1f}", f"{100 * ms / total:.0f}%", calls[(op, where)] // runs, where]
            for (op, where), ms in sorted(self_ms.items(), key=lambda item: -item[1])[:top]]
    return (f"{title}: self CPU ms per forward by op and the package line that called it "
            f"(total {total:.0f} ms, torch.profiler, {runs} forwards after a warm-up)\n\n"
            + markdown_table(["op", "ms", "share", "calls", "called from"], rows) + "\n")


def _calling_site(event) -> str:
    """The innermost function of the model code (``swin_scratch/models/``) above a profiled op, as
    ``swin_scratch/models/swin.py:287 forward (LayerNorm)``: the file, the line the function is defined
    on, its name, and the innermost module the op ran in below it."""
    module = ""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("nn.Module: ") and not module:
            module = parent.name.removeprefix("nn.Module: ").rsplit("_", 1)[0]
        if "swin_scratch/models/" in parent.name:
            path, _, function = parent.name.partition(": ")
            path = "swin_scratch/" + path.split("swin_scratch/", 1)[1]
            return f"{path.replace('(', ':').rstrip(')')} {function}" + (f" ({module})" if module else "")
        parent = parent.cpu_parent
    return "(outside the model code)" + (f" ({module})" if module else "")


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


