#!/usr/bin/env python
"""Swin-T forward speed against torchvision's swin_t and timm's swin_tiny_patch4_window7_224 (CPU,
inference mode, interleaved): ours eager / compiled / bf16, timm eager (fused attention) / compiled /
bf16, torchvision eager. Prints the machine line first (CPU, ISA, threads, torch, GEMM peaks, the
floor for Swin-T 224²), then one row per implementation with its % of that floor; then the
activation-checkpointing memory saving.

With --device cuda the same peers run on the GPU (synchronized around each timed call; fp32 with
TF32 off, plus bf16 and fp16 autocast rows), the machine line names the GPU, torch/CUDA and that GPU's
GEMM peaks, and a 224² batch 64 row is added (batches 1 and 8 are launch-bound there).

    python tools/benchmark.py --rounds 10 --threads 2 --markdown docs/benchmarks/swin_<machine>.md
    python tools/benchmark.py --no-compile --precision fp32     # skip compiled and bf16 rows
    python tools/benchmark.py --device cuda --rounds 20 --speed-only
    python tools/benchmark.py --memory-only

torchvision and timm are imported here, in the tool, as independent peers; the package never
imports them.
"""
import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from swin_scratch.benchmark.machine import describe_machine
from swin_scratch.benchmark.swin import CUDA_SETTINGS, SETTINGS, Candidate, memory_table, speed_report
from swin_scratch.benchmark.timing import emit_report
from swin_scratch.memory import reuse_freed_memory
from swin_scratch.models import swin_tiny
from swin_scratch.precision import PRECISIONS, PrecisionError, check_precision

DEFAULT_PRECISIONS = {"cpu": ["fp32", "bf16"], "cuda": ["fp32", "bf16", "fp16"]}


def make_peers(precisions: list[str], compile_models: bool, device: str = "cpu"):
    def peers(backbone: bool, height: int, width: int) -> dict[str, Candidate]:
        """Ours plus whichever independent implementations are installed (tests-only dependencies)."""
        eager: dict[str, nn.Module] = {"ours": _ours(backbone).to(device)}
        timm_model = _timm(backbone, height, width)
        if timm_model is not None:
            eager["timm"] = timm_model.to(device)  # timm >= 0.9 uses F.scaled_dot_product_attention (fused)
        candidates = {f"{name} eager": Candidate(model) for name, model in eager.items()}
        tv = _torchvision(backbone)
        if tv is not None:
            candidates["torchvision eager"] = Candidate(tv.to(device))
        if compile_models:
            dynamic = backbone  # detection inputs change size; classification is fixed at 224²
            candidates.update({f"{name} compiled": Candidate(torch.compile(model, dynamic=dynamic))
                               for name, model in eager.items()})
        for precision in precisions:
            if precision != "fp32":
                candidates.update({f"{name} {precision}": Candidate(model, precision) for name, model in eager.items()})
        return candidates

    return peers


def _ours(backbone: bool) -> nn.Module:
    return (swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)) if backbone else swin_tiny()).eval()


def _torchvision(backbone: bool) -> nn.Module | None:
    try:
        from torchvision.models import swin_t
    except ImportError:
        return None
    model = swin_t(weights=None)
    return (model.features if backbone else model).eval()


def _timm(backbone: bool, height: int, width: int) -> nn.Module | None:
    try:
        import timm

        kwargs = {"img_size": (height, width), "strict_img_size": False} if backbone else {}
        model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **kwargs)
    except Exception as err:  # not installed, or this timm cannot take the size
        print(f"(timm skipped: {type(err).__name__}: {str(err)[:120]})", file=sys.stderr)
        return None
    return (_TimmFeatures(model) if backbone else model).eval()


class _TimmFeatures(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_features(x)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the peers run (cuda: the current GPU)")
    parser.add_argument("--precision", choices=PRECISIONS, nargs="+",
                        help="precisions to time (bf16/fp16 run under torch.autocast; fp16 on cuda only); "
                             "default: fp32 bf16 on cpu, fp32 bf16 fp16 on cuda")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    parser.add_argument("--inputs", choices=[label for label, *_ in CUDA_SETTINGS], nargs="+",
                        help="default: " + ", ".join(label for label, *_ in SETTINGS) + " (cuda: also 224² batch 64)")
    parser.add_argument("--markdown", type=Path, metavar="FILE.md", help="also write the speed report here")
    parser.add_argument("--memory-size", type=int, default=1024)
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args(argv)
    reuse_freed_memory()  # every model timed under the allocator policy the tools run with
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "error: --device cuda: torch sees no CUDA GPU (torch.cuda.is_available() is False)\n")
    precisions = args.precision or DEFAULT_PRECISIONS[args.device]
    try:
        for precision in precisions:
            check_precision(precision, args.device, source="--precision")
    except PrecisionError as err:
        parser.exit(2, f"error: {err}\n")
    machine = describe_machine(args.threads, args.device)
    if args.memory_only:
        print(machine.line())
    else:
        inputs = args.inputs or [label for label, *_ in (CUDA_SETTINGS if args.device == "cuda" else SETTINGS)]
        settings = [s for s in CUDA_SETTINGS if s[0] in inputs]
        peers = make_peers(precisions, compile_models=not args.no_compile, device=args.device)
        report = speed_report(peers, machine, args.rounds, settings)
        emit_report(report, args.markdown)
    if not args.speed_only:
        print()
        print(memory_table(args.memory_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
