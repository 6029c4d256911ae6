"""Whole models: Swin, the text Transformer, RNNs, BERT-style encoder."""
from .swin import SwinTransformer, swin_base, swin_large, swin_small, swin_tiny
from .swin_checkpoint import LoadReport, SwinCheckpointError, load_swin_checkpoint

__all__ = [
    "LoadReport",
    "SwinCheckpointError",
    "SwinTransformer",
    "load_swin_checkpoint",
    "swin_base",
    "swin_large",
    "swin_small",
    "swin_tiny",
]
