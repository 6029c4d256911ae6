"""The config every tool runs with, built in one place: ``tools/train_net.py`` (training and
``--eval-only``), ``tools/demo.py``, ``tools/export_model.py``.

Why one function: each tool needs the same steps in the same order (the file and KEY VALUE
overrides, the weights, a device this machine has, the datasets the config can name registered in
this process, and the class count a checkpoint trained on your own data carries); written once,
a new tool cannot forget one of them.
"""
from __future__ import annotations

import os
from typing import Sequence

from detectron2.config import CfgNode

from swin_scratch.detection.checkpoint_classes import use_checkpoint_classes
from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.detection.datasets import register_config_datasets
from swin_scratch.detection.device import use_available_device


def tool_config(
    config_file: str | os.PathLike | None,
    overrides: Sequence[str] = (),
    weights: str | os.PathLike | None = None,
) -> CfgNode:
    """An unfrozen config: ``config_file`` + ``overrides``, ``MODEL.WEIGHTS = weights`` when given, on a
    device this machine has (one warning when it falls back to the CPU), its datasets registered.

    With ``weights`` that carry the class names they were trained on (saved by training), NUM_CLASSES
    follows them, so a model trained on your own data runs with the config it was trained from.
    """
    cfg = get_swin_cfg(str(config_file) if config_file else None, list(overrides))
    if weights:
        cfg.MODEL.WEIGHTS = str(weights)
    use_available_device(cfg)
    register_config_datasets(cfg)
    if weights:
        use_checkpoint_classes(cfg, weights)
    return cfg
