"""Oracle glue (test-only, temporary): rename torchvision's and timm's Swin V2 state dicts to the keys of
microsoft/Swin-Transformer's SwinTransformerV2, so the oracles' weights load into ours.

Kept minimal on purpose: the package's real converters (swin_scratch/weights/layouts.py) will replace it.
"""
from __future__ import annotations

import re

import torch

# torchvision.features index -> official stage / patch-merging index
_TV_STAGES = {1: 0, 3: 1, 5: 2, 7: 3}
_TV_MERGES = {2: 0, 4: 1, 6: 2}
_TV_MLP = {"mlp.0.": "mlp.fc1.", "mlp.3.": "mlp.fc2."}
# recomputed by every implementation; the official checkpoints store them, ours and timm's do not
_BUFFERS = ("relative_coords_table", "relative_position_index", "attn_mask")


def torchvision_v2_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ``swin_v2_*`` -> official keys. Its qkv bias (3C) becomes ``q_bias`` (first C) and
    ``v_bias`` (last C); the key third, which torchvision zeroes in forward, is dropped."""
    official = {}
    for key, value in state.items():
        if key.endswith(_BUFFERS):
            continue
        parts = key.split(".")
        if key.startswith("features.0.0."):
            new = "patch_embed.proj." + parts[-1]
        elif key.startswith("features.0.2."):
            new = "patch_embed.norm." + parts[-1]
        elif key.startswith("features.") and int(parts[1]) in _TV_STAGES:
            rest = ".".join(parts[3:])
            for old, replacement in _TV_MLP.items():  # the block's mlp only, not attn.cpb_mlp
                if rest.startswith(old):
                    rest = replacement + rest[len(old):]
            new = f"layers.{_TV_STAGES[int(parts[1])]}.blocks.{parts[2]}.{rest}"
        elif key.startswith("features.") and int(parts[1]) in _TV_MERGES:
            new = f"layers.{_TV_MERGES[int(parts[1])]}.downsample.{'.'.join(parts[2:])}"
        else:
            new = key  # norm.*, head.*
        if new.endswith("attn.qkv.bias"):
            q_bias, _, v_bias = value.chunk(3)
            official[new.replace("qkv.bias", "q_bias")] = q_bias
            official[new.replace("qkv.bias", "v_bias")] = v_bias
            continue
        official[new] = value
    return official


def timm_v2_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``swinv2_*`` -> official keys: timm merges patches at the start of stage i + 1, the
    official layout at the end of stage i; timm's classifier is ``head.fc``."""
    official = {}
    for key, value in state.items():
        if key.endswith(_BUFFERS):
            continue
        new = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", key)
        official[new.replace("head.fc.", "head.")] = value
    return official
