"""Tiny Swin builders shared by the weights and conversion tests."""
from __future__ import annotations

import torch

from swin_scratch.models import SwinTransformer

TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), drop_path_rate=0.0)


def classifier(**overrides) -> SwinTransformer:
    return SwinTransformer(**{**TINY, "num_classes": 10, **overrides})


def backbone(**overrides) -> SwinTransformer:
    return SwinTransformer(**{**TINY, "num_classes": 0, "out_indices": (0, 1, 2, 3), **overrides})


def official_state(model: SwinTransformer) -> dict[str, torch.Tensor]:
    """What an official file holds: parameters plus the relative_position_index / attn_mask buffers."""
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        if hasattr(module, "relative_position_index"):
            state[f"{name}.relative_position_index"] = module.relative_position_index
            state[f"{name}.attn_mask"] = torch.zeros(1)
    return state
