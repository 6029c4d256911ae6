"""Which device a config runs on, on this machine: the one place that decides it.

Why: detectron2's default ``MODEL.DEVICE`` is ``cuda`` and the COCO configs keep it (they are
GPU recipes). On a machine without a usable CUDA GPU that default would end every entry point
(training, ``--eval-only``, ``tools/demo.py``, ``tools/export_model.py``) in a traceback such as
"Found no NVIDIA driver". Instead the run goes on on the CPU, after one warning line, so the same
command works on a laptop and on a GPU server.
"""
from __future__ import annotations

import sys
from typing import Any

import torch
from detectron2.config import CfgNode

CPU = "cpu"


def cuda_is_usable() -> bool:
    return torch.cuda.is_available()


def resolve_device(cfg: CfgNode) -> str:
    """``MODEL.DEVICE``, or ``"cpu"`` with one ``warning:`` line (stderr) when it names CUDA and none is usable."""
    return resolve_device_name(str(cfg.MODEL.DEVICE), key="MODEL.DEVICE", cpu_override="MODEL.DEVICE cpu")


def resolve_device_name(requested: str, key: str, cpu_override: str) -> str:
    """``requested``, or ``"cpu"`` with one warning naming the config ``key`` and the override that says cpu."""
    if not requested.startswith("cuda") or cuda_is_usable():
        return requested
    print(
        f"warning: {key} is {requested!r} but this machine has no usable CUDA GPU: running on the CPU "
        f"instead (slower; set {cpu_override} to say so and silence this warning)",
        file=sys.stderr,
    )
    return CPU


def use_available_device(cfg: CfgNode) -> str:
    """Point an unfrozen ``cfg`` at :func:`resolve_device`'s answer and return it.

    When it falls back to the CPU, fp16 mixed precision (GPU-only) is turned off too, so a GPU recipe
    that uses it also runs; bf16 mixed precision works on CPUs and is kept.
    """
    device = resolve_device(cfg)
    if device != cfg.MODEL.DEVICE:
        cfg.MODEL.DEVICE = device
        if cfg.SOLVER.AMP.PRECISION == "fp16":
            cfg.SOLVER.AMP.ENABLED = False
    return device


def use_available_train_device(train: Any) -> str:
    """:func:`use_available_device` for a LazyConfig: its ``train.device`` and ``train.amp`` (fp16, the
    precision detectron2's AMP means when ``train.amp.precision`` is not given, needs a GPU)."""
    device = resolve_device_name(str(train.device), key="train.device", cpu_override="train.device=cpu")
    if device != train.device:
        train.device = device
        if train.amp.get("precision", "fp16") == "fp16":
            train.amp.enabled = False
    return device
