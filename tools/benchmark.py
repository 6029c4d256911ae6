#!/usr/bin/env python
"""Swin-T forward speed against torchvision's swin_t and timm's swin_tiny_patch4_window7_224, and SwinV2-T
against torchvision's swin_v2_t and timm's swinv2_tiny_window8_256 (CPU, inference mode, interleaved):
ours eager / compiled / bf16, timm eager (fused attention) / compiled / bf16, torchvision eager. Prints
the machine line first (CPU, ISA, threads, torch, GEMM peaks, the floor for Swin-T 224², the load
average), then one row per implementation with its % of that floor, then the speed goals with what was
measured; then our backbones' time per megapixel at three sizes and three batches; then the
activation-checkpointing memory saving. ``--profile``: where our backbone's time goes, op by op, with
the line of the package that called each.

With --device cuda the same peers run on the GPU (synchronized around each timed call; fp32 with
TF32 off, plus bf16 and fp16 autocast rows), the machine line names the GPU, torch/CUDA and that GPU's
GEMM peaks, and a 224² batch 64 row is added (batches 1 and 8 are launch-bound there).

    python tools/benchmark.py --rounds 5 --markdown     # each table into its section of docs/benchmarks/<machine>.md
    python tools/benchmark.py --no-compile --precision fp32     # skip compiled and bf16 rows
    python tools/benchmark.py --tables speed --versions 2       # SwinV2-T's speed table only
    python tools/benchmark.py --device cuda --rounds 20 --speed-only
    python tools/benchmark.py --memory-only
    python tools/benchmark.py --profile --markdown

torchvision and timm are imported here, in the tool, as independent peers; the package never
imports them.
"""
import argparse
import sys

import torch
from torch import nn

from swin_scratch.benchmark.machine import describe_machine
from swin_scratch.benchmark.swin import (
    CUDA_SETTINGS,
    MEGAPIXEL_SETTINGS,
    SETTINGS,
    V2_CUDA_SETTINGS,
    V2_SETTINGS,
    Candidate,
    megapixel_report,
    memory_table,
    profile_report,
    speed_report,
)
from swin_scratch.benchmark.timing import MACHINE_FILE, emit_report
from swin_scratch.memory import reuse_freed_memory
from swin_scratch.models import swin_tiny
from swin_scratch.models.swin_v2 import swin_v2_tiny
from swin_scratch.precision import PRECISIONS, PrecisionError, check_precision

DEFAULT_PRECISIONS = {"cpu": ["fp32", "bf16"], "cuda": ["fp32", "bf16", "fp16"]}
TABLES = ("speed", "megapixel", "memory")
NAMES = {1: "Swin-T", 2: "SwinV2-T"}


def make_peers(precisions: list[str], compile_models: bool, device: str = "cpu", version: int = 1):
    def peers(backbone: bool, height: int, width: int) -> dict[str, Candidate]:
        """Ours plus whichever independent implementations are installed (tests-only dependencies)."""
        eager: dict[str, nn.Module] = {"ours": _ours(backbone, version).to(device)}
        timm_model = _timm(backbone, height, width, version)
        if timm_model is not None:
            eager["timm"] = timm_model.to(device)  # timm >= 0.9 uses F.scaled_dot_product_attention (fused)
        candidates = {f"{name} eager": Candidate(model) for name, model in eager.items()}
        tv = _torchvision(backbone, version)
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


def _ours(backbone: bool, version: int = 1) -> nn.Module:
    factory = swin_tiny if version == 1 else swin_v2_tiny
    return (factory(num_classes=0, out_indices=(0, 1, 2, 3)) if backbone else factory()).eval()


def _torchvision(backbone: bool, version: int = 1) -> nn.Module | None:
    try:
        from torchvision.models import swin_t, swin_v2_t
    except ImportError:
        return None
    model = (swin_t if version == 1 else swin_v2_t)(weights=None)
    return (model.features if backbone else model).eval()


def _timm(backbone: bool, height: int, width: int, version: int = 1) -> nn.Module | None:
    try:
        import timm

        kwargs = {"img_size": (height, width), "strict_img_size": False} if backbone else {}
        name = "swin_tiny_patch4_window7_224" if version == 1 else "swinv2_tiny_window8_256"
        model = timm.create_model(name, pretrained=False, **kwargs)
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
    parser.add_argument("--inputs", nargs="+",
                        choices=list(dict.fromkeys(label for label, *_ in CUDA_SETTINGS + V2_CUDA_SETTINGS)),
                        help="default: " + ", ".join(label for label, *_ in SETTINGS) + " (V2: "
                        + ", ".join(label for label, *_ in V2_SETTINGS) + "; cuda: also batch 64)")
    parser.add_argument("--versions", type=int, nargs="+", choices=(1, 2), default=[1, 2],
                        help="Swin-T (1) and/or SwinV2-T (2) speed tables and megapixel rows")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES),
                        help="which reports to make (default: all)")
    parser.add_argument("--markdown", nargs="?", const=MACHINE_FILE, metavar="FILE.md",
                        help="also write the report to FILE.md; without a file, each table into its section of "
                             "docs/benchmarks/<machine>.md (e.g. amd-epyc-avx512-2core.md)")
    parser.add_argument("--label", default="",
                        help="appended to the machine file's section names (e.g. compiled), so runs with other "
                             "options keep their own sections")
    parser.add_argument("--memory-size", type=int, default=1024)
    parser.add_argument("--memory-only", action="store_true", help="= --tables memory")
    parser.add_argument("--speed-only", action="store_true", help="= --tables speed")
    parser.add_argument("--profile", action="store_true",
                        help="instead: where our backbones' time goes at 800×1216 and 224² batch 8, op by op")
    args = parser.parse_args(argv)
    tables = ["memory"] if args.memory_only else ["speed"] if args.speed_only else args.tables
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
    print(machine.line(), flush=True)
    reports = []  # (section of the machine file, report)
    if args.profile:
        for version in args.versions:
            model = _ours(True, version).to(args.device)
            images = torch.rand(1, 3, 800, 1216, device=args.device)
            profile = profile_report(model, images, machine, f"{NAMES[version]} backbone, 800×1216 batch 1")
            classifier = _ours(False, version).to(args.device)
            size = 224 if version == 1 else 256
            profile += "\n" + profile_report(classifier, torch.rand(8, 3, size, size, device=args.device), machine,
                                             f"{NAMES[version]} classifier, {size}² batch 8")
            reports.append((f"{NAMES[version]} profile", f"{machine.line()}\n\n{profile}"))
        tables = []
    for version in args.versions if "speed" in tables else []:
        cuda = args.device == "cuda"
        all_settings = (CUDA_SETTINGS if cuda else SETTINGS) if version == 1 else (V2_CUDA_SETTINGS if cuda
                                                                                    else V2_SETTINGS)
        every = CUDA_SETTINGS if version == 1 else V2_CUDA_SETTINGS
        inputs = args.inputs or [label for label, *_ in all_settings]
        settings = [s for s in every if s[0] in inputs]
        if not settings:
            continue
        peers = make_peers(precisions, compile_models=not args.no_compile, device=args.device, version=version)
        reports.append((f"{NAMES[version]} speed", speed_report(peers, machine, args.rounds, settings)))
    if "megapixel" in tables:
        backbones = {f"ours {NAMES[version]}": _ours(True, version).to(args.device) for version in args.versions}
        rounds = max(2, min(args.rounds, 3))
        reports.append(("backbone time per megapixel",
                        megapixel_report(backbones, machine, rounds, MEGAPIXEL_SETTINGS)))
    if "memory" in tables:
        reports.append(("activation checkpointing memory", f"{machine.line()}\n\n{memory_table(args.memory_size)}\n"))
    if args.markdown == MACHINE_FILE:
        for section, report in reports:
            path = emit_report(report, MACHINE_FILE, machine, f"{section} ({args.label})" if args.label else section)
        print(f"(written to {path})" if reports else "")
    else:
        emit_report("\n".join(report for _, report in reports), args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
