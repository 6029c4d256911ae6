#!/usr/bin/env python
"""Swin-T forward speed vs torchvision's swin_t and timm's swin_tiny_patch4_window7_224 (CPU, fp32,
inference mode, interleaved), and the activation-checkpointing memory saving.

    python tools/benchmark.py --rounds 10 --threads 2
    python tools/benchmark.py --memory-only

torchvision and timm are imported here, in the tool, as independent peers; the package never
imports them.
"""
import argparse
import sys

from torch import nn

from swin_scratch.benchmark.swin import memory_table, speed_table
from swin_scratch.models import swin_tiny


def peers(backbone: bool, height: int, width: int) -> dict[str, nn.Module]:
    """Ours plus whichever independent implementations are installed (tests-only dependencies)."""
    models: dict[str, nn.Module] = {}
    if backbone:
        models["swin_scratch"] = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3))
    else:
        models["swin_scratch"] = swin_tiny()
    try:
        from torchvision.models import swin_t

        tv = swin_t(weights=None)
        models["torchvision"] = tv.features if backbone else tv
    except ImportError:
        pass
    try:
        import timm

        kwargs = {"img_size": (height, width), "strict_img_size": False} if backbone else {}
        model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **kwargs)
        models["timm"] = _TimmFeatures(model) if backbone else model
    except Exception as err:  # not installed, or this timm cannot take the size
        print(f"(timm skipped: {type(err).__name__}: {str(err)[:120]})", file=sys.stderr)
    return {name: m.eval() for name, m in models.items()}


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
    parser.add_argument("--memory-size", type=int, default=1024)
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.memory_only:
        print(f"Speed: median ms per forward, {args.threads} threads, {args.rounds} interleaved rounds")
        print(speed_table(peers, args.rounds, args.threads))
    if not args.speed_only:
        print()
        print(memory_table(args.memory_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
