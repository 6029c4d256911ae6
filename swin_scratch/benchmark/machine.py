"""What machine a benchmark ran on, and how fast it could go: printed first by every benchmark tool.

A speed ratio measured on one CPU does not hold on another (fused-attention kernels, bf16 units and
GEMM libraries differ), so every table carries the CPU, its relevant ISA flags, the thread count,
the torch version and the measured GEMM peak; each timing is also shown as a percentage of the
floor that peak implies (time = FLOPs / peak). On a GPU (``describe_machine(device="cuda")``) the
line names the GPU, torch and its CUDA version, and that GPU's GEMM peaks: fp32 with TF32 off (the
process then keeps TF32 off, so fp32 rows are IEEE fp32 too), bf16 and fp16.
"""
from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import dataclass

import torch

from swin_scratch.benchmark.timing import synchronizer
from swin_scratch.memory import allocator_description

# Swin-T forward at 224² (the paper's 4.5 GMACs, 2 FLOPs per multiply-add).
SWIN_T_224_GFLOP = 9.0

# /proc/cpuinfo flag -> the name printed; those that decide fp32/bf16 matmul speed on x86.
ISA_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


@dataclass(frozen=True)
class Machine:
    cpu: str
    isa: tuple[str, ...]
    threads: int
    torch_version: str
    gemm_gflops: dict[str, float]  # measured peak per precision ("fp32", "bf16"; on a GPU also "fp16")
    gpu: str | None = None  # the CUDA device the timings run on (its name); None: the CPU
    allocator: str = ""  # the CPU memory policy the timings ran under (swin_scratch.memory)
    load: float | None = None  # the 1-minute load average when the machine was described
    cores: int | None = None  # logical CPUs of the machine (os.cpu_count())

    def floor_ms(self, gflop: float, precision: str = "fp32") -> float:
        """Time ``gflop`` would take at this machine's measured GEMM peak."""
        return gflop / self.gemm_gflops[precision] * 1000

    def percent_of_floor(self, milliseconds: float, gflop: float, precision: str = "fp32") -> float:
        """100 = as fast as the GEMM peak allows; a real network lands well below."""
        return 100 * self.floor_ms(gflop, precision) / milliseconds

    @property
    def device(self) -> str:
        return "cpu" if self.gpu is None else "cuda"

    def line(self) -> str:
        if self.gpu is not None:
            peaks = ", ".join(f"{name}{' (TF32 off)' if name == 'fp32' else ''} {value:.0f}"
                              for name, value in self.gemm_gflops.items())
            floors = ", ".join(f"{name} {self.floor_ms(SWIN_T_224_GFLOP, name):.3f} ms" for name in self.gemm_gflops)
            return (
                f"Machine: GPU {self.gpu} (host CPU: {self.cpu}, {self.threads} threads); torch {self.torch_version}; "
                f"GEMM peak (GFLOP/s): {peaks}; floor for Swin-T 224² ({SWIN_T_224_GFLOP} GFLOP/image): {floors}"
                + self._load_phrase()
            )
        peaks = ", ".join(f"{name} {value:.0f}" for name, value in self.gemm_gflops.items())
        floors = ", ".join(f"{name} {self.floor_ms(SWIN_T_224_GFLOP, name):.1f} ms" for name in self.gemm_gflops)
        return (
            f"Machine: {self.cpu}; ISA: {', '.join(self.isa) or 'none of AVX2/AVX-512/AVX512-BF16/AMX'}; "
            f"{self.threads} threads; torch {self.torch_version}; GEMM peak (GFLOP/s): {peaks}; "
            f"floor for Swin-T 224² ({SWIN_T_224_GFLOP} GFLOP/image): {floors}"
            + (f"; memory: {self.allocator}" if self.allocator else "")
            + self._load_phrase()
        )

    def _load_phrase(self) -> str:
        if self.load is None:
            return ""
        return f"; load average (1 min) {self.load:.2f} on {self.cores or '?'} logical CPUs"

    def slug(self) -> str:
        """The machine's file name in docs/benchmarks/: vendor and family, widest vector ISA, logical CPUs,
        e.g. ``amd-epyc-avx512-2core`` or ``intel-xeon-avx512-2core``; a GPU's name for GPU runs."""
        if self.gpu is not None:
            return _slugify(self.gpu)
        isa = "amx" if "AMX-BF16" in self.isa else "avx512" if "AVX-512" in self.isa else "avx2" if "AVX2" in self.isa \
            else platform.machine().lower()
        cores = f"-{self.cores}core" if self.cores else ""
        return f"{_slugify(self.cpu)}-{isa}{cores}"


def _slugify(name: str) -> str:
    """'Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.0GHz' -> 'intel-xeon-platinum-8480'."""
    name = re.sub(r"\((R|TM|r|tm)\)", " ", name)
    name = re.sub(r"@.*$", " ", name)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.lower())
             if w and w not in {"processor", "cpu", "core", "with", "radeon", "graphics"}]
    return "-".join(words[:4]) or "unknown"


def describe_load() -> str:
    """The 1-minute load average now, for a report's closing line."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """CPU model name and flag set from /proc/cpuinfo (Linux); platform's name elsewhere."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            text = cpuinfo.read()
    except OSError:
        return platform.processor() or platform.machine(), set()
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    return fields.get("model name", platform.machine()), set(fields.get("flags", "").split())


def gemm_peak_gflops(dtype: torch.dtype, size: int = 1024, seconds: float = 0.5, device: str = "cpu") -> float:
    """Best observed GFLOP/s of a size³ matmul on ``device``, repeated for about ``seconds``
    (on CUDA each call is timed between two ``torch.cuda.synchronize``)."""
    sync = synchronizer(device) or (lambda: None)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, kernel selection
    sync()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def describe_machine(threads: int | None = None, device: str = "cpu") -> Machine:
    """Measure this machine (about a second) with ``threads`` intra-op threads (default: torch's).

    ``device="cuda"``: the current GPU instead, with TF32 turned off for this process (matmuls and
    cuDNN convolutions), so that "fp32" means IEEE fp32 in the peak and in every fp32 timing after it.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    cpu, flags = cpu_model_and_flags()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    common = dict(cpu=cpu, isa=tuple(label for flag, label in ISA_FLAGS.items() if flag in flags),
                  threads=torch.get_num_threads(), allocator=allocator_description(), load=load,
                  cores=os.cpu_count())
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        peaks = {name: gemm_peak_gflops(dtype, size=8192, device=device) for name, dtype in
                 (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16))}
        return Machine(**common, torch_version=f"{torch.__version__}, CUDA {torch.version.cuda}", gemm_gflops=peaks,
                       gpu=torch.cuda.get_device_name(device))
    return Machine(
        **common,
        torch_version=torch.__version__,
        gemm_gflops={"fp32": gemm_peak_gflops(torch.float32), "bf16": gemm_peak_gflops(torch.bfloat16)},
    )
