"""The one place that turns a precision name ("fp32", "bf16", "fp16") into a ``torch.autocast`` context.

Inference tools, ``--eval-only``, export verification and mixed-precision training all call
:func:`autocast`, so what each name means on each device is decided here once.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

PRECISIONS = ("fp32", "bf16", "fp16")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(ValueError):
    """A precision name that is unknown, or that this device cannot run (fp16 autocast on CPU)."""


def check_precision(precision: str, device_type: str, source: str = "precision") -> None:
    """Raise :class:`PrecisionError` naming ``source`` (a flag or config key), the value and the fix."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"{source}: unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device_type != "cuda":
        # CPU fp16 autocast exists but has few fast kernels and no grad scaler: bf16 is the CPU choice.
        raise PrecisionError(f"{source}: fp16 needs a GPU (device {device_type!r}); use bf16 or fp32 on CPU")


def autocast(precision: str, device_type: str = "cpu") -> ContextManager:
    """``fp32`` runs as is; ``bf16``/``fp16`` run matmuls and convolutions in that dtype (torch.autocast)."""
    check_precision(precision, device_type)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=_DTYPES[precision])


def device_type_of(device: str | torch.device) -> str:
    """'cuda:1' -> 'cuda', 'cpu' -> 'cpu' (what torch.autocast wants)."""
    return torch.device(device).type
