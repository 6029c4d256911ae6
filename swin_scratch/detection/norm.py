"""LayerNorm over the channels of NCHW feature maps, for FPN and detection heads (ViTDet's ``"LN"``).

detectron2 v0.6's ``get_norm`` has no ``"LN"`` (upstream main added one); its ``norm=`` arguments also
take a callable ``channels -> module``, and this class is one, so the same config builds the same
model on both versions.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelLayerNorm(nn.Module):
    """``(x - mean_C) / sqrt(var_C + eps) * weight + bias`` at every pixel of an ``(N, C, H, W)`` map."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H, W)
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]
