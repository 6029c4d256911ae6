"""Vision networks: the Swin Transformer (V1 and V2) in its classification and detection modes.

``load_swin_checkpoint`` lives in :mod:`swin_scratch.weights` (the one home of checkpoint layouts)
and is re-exported here because loading weights into a model is where users look for it.
"""
from swin_scratch.weights.swin import LoadReport, load_swin_checkpoint

from .swin import SwinTransformer, swin_base, swin_large, swin_small, swin_tiny
from .swin_v2 import SwinTransformerV2, swin_v2_base, swin_v2_large, swin_v2_small, swin_v2_tiny

__all__ = [
    "LoadReport",
    "SwinTransformer",
    "SwinTransformerV2",
    "load_swin_checkpoint",
    "swin_base",
    "swin_large",
    "swin_small",
    "swin_tiny",
    "swin_v2_base",
    "swin_v2_large",
    "swin_v2_small",
    "swin_v2_tiny",
]
