"""FLOP counting with fvcore, including the fused attention op fvcore does not know (test helper:
the package itself never counts FLOPs).

fvcore counts one multiply-add as one FLOP (the convention of the Swin paper's table). It
has no handle for ``aten::scaled_dot_product_attention`` and would silently skip it; the
handle below counts its two matmuls, Q Kᵀ and (softmax) V.
"""
from __future__ import annotations

from math import prod
from typing import Any

import torch
from torch import nn


def _shape(value: Any) -> list[int]:
    return list(value.type().sizes())


def sdpa_flop_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """(..., Lq, d) x (..., Lk, d) -> QKᵀ: ...·Lq·Lk·d MACs, plus attn·V: ...·Lq·Lk·dv MACs."""
    query, key, value = (_shape(v) for v in inputs[:3])
    batch = prod(query[:-2])
    length_q, dim = query[-2], query[-1]
    length_k, dim_v = key[-2], value[-1]
    return batch * length_q * length_k * (dim + dim_v)


def flop_analysis(model: nn.Module, inputs: tuple[torch.Tensor, ...]):
    """fvcore's FlopCountAnalysis with the fused-attention handle registered."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_handle)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis


def count_flops(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> float:
    """Total FLOPs (multiply-adds) of ``model(*inputs)`` as fvcore counts them, attention included."""
    return float(flop_analysis(model, inputs).total())
