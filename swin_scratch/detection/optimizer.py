"""The official Swin detection optimizer: AdamW without weight decay on norms, biases and position tables."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from detectron2.solver.build import maybe_add_gradient_clipping
from torch import nn

NORM_TYPES = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def _frozen_batchnorm_type() -> tuple[type, ...]:
    from detectron2.layers import FrozenBatchNorm2d

    return (FrozenBatchNorm2d,)


def is_no_decay(module: nn.Module, param_name: str, full_name: str, no_decay_keys: Iterable[str]) -> bool:
    """Official recipe: norms, biases and relative-position / absolute-position tables are not decayed."""
    if isinstance(module, NORM_TYPES + _frozen_batchnorm_type()):
        return True
    if param_name == "bias":
        return True
    return any(key in full_name for key in no_decay_keys)


def model_no_decay_keys(model: nn.Module) -> set[str]:
    """The name fragments the model's own modules say take no weight decay (timm's convention:
    ``no_weight_decay()`` names, ``no_weight_decay_keywords()`` fragments); the model knows them best."""
    keys: set[str] = set()
    for module in model.modules():
        for method in ("no_weight_decay", "no_weight_decay_keywords"):
            if callable(getattr(module, method, None)):
                keys |= set(getattr(module, method)())
    return keys


def swin_param_groups(
    model: nn.Module, base_lr: float, weight_decay: float, no_decay_keys: Iterable[str]
) -> list[dict[str, Any]]:
    """Two groups: ``decay`` (weight_decay) and ``no_decay`` (0.0); each param appears once.

    No decay: norms, biases, parameters whose name contains one of ``no_decay_keys`` (the config's
    SOLVER.NO_WEIGHT_DECAY_KEYS) or one of the model's own (:func:`model_no_decay_keys`: Swin V2's
    ``logit_scale``, ``cpb_mlp``, ``q_bias``/``v_bias`` among them).
    """
    decay, no_decay, seen = [], [], set()
    no_decay_keys = tuple(sorted(set(no_decay_keys) | model_no_decay_keys(model)))
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            group = no_decay if is_no_decay(module, param_name, full_name, no_decay_keys) else decay
            group.append(param)
    return [
        {"params": decay, "lr": base_lr, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "lr": base_lr, "weight_decay": 0.0, "name": "no_decay"},
    ]


def build_swin_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW (or SGD) over :func:`swin_param_groups`, with detectron2's optional gradient clipping."""
    groups = swin_param_groups(model, cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.NO_WEIGHT_DECAY_KEYS)
    name = cfg.SOLVER.OPTIMIZER.lower()
    if name == "adamw":
        optimizer_type, kwargs = torch.optim.AdamW, {"betas": tuple(cfg.SOLVER.BETAS)}
    elif name == "sgd":
        optimizer_type, kwargs = torch.optim.SGD, {"momentum": cfg.SOLVER.MOMENTUM, "nesterov": cfg.SOLVER.NESTEROV}
    else:
        raise ValueError(f"SOLVER.OPTIMIZER must be 'AdamW' or 'SGD', got {cfg.SOLVER.OPTIMIZER!r}")
    return maybe_add_gradient_clipping(cfg, optimizer_type)(groups, lr=cfg.SOLVER.BASE_LR, **kwargs)
