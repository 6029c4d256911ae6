"""A Linear layer whose epilogue (bias, GELU, a residual add) runs inside the matrix product.

``F.linear`` on the CPU writes its output twice (MKL's ``addmm`` first copies the broadcast bias into
it, then accumulates the product), and a GELU or a residual add after it are one more pass each over
a tensor as large as the output. In eager CPU inference :func:`linear` calls oneDNN's linear kernel
instead (``torch.ops.mkldnn._linear_pointwise``, the op inductor's CPU backend emits for the same
patterns), which adds the bias, applies the GELU and adds the residual to each output tile while it
is still in cache: one pass. Its weight is packed once into oneDNN's blocked layout per weight version
(and precision), the way inductor's freezing packs it.

Everywhere else (autograd, tracing, ONNX export, torch.compile, other devices, a PyTorch without
oneDNN, or ``SWIN_SCRATCH_FUSED_LINEAR=0``) it is the plain ``F.linear`` -> ``F.gelu`` -> ``+``
sequence, the reference the fused path is tested against (``tests/layers/test_fused.py``).
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["linear", "linear_module", "fused_linear_enabled", "set_fused_linear"]

ACTIVATIONS = (None, "gelu")

_state = {"enabled": os.environ.get("SWIN_SCRATCH_FUSED_LINEAR", "1") != "0"}
# weight -> {dtype: ((its version, data pointer), the packed weight)}: the packing follows in-place changes
_packed_weights: WeakIdKeyDictionary = WeakIdKeyDictionary()


def set_fused_linear(enabled: bool) -> bool:
    """Turn the fused CPU path on or off for this process (benchmarks compare both); returns the old setting."""
    previous, _state["enabled"] = _state["enabled"], bool(enabled)
    return previous


def fused_linear_enabled() -> bool:
    return _state["enabled"] and _onednn_available()


def linear(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    activation: Optional[str] = None,
    residual: Optional[Tensor] = None,
) -> Tensor:
    """``residual + act(x @ weight.T + bias)`` with ``act`` the identity or exact GELU; x (..., in), weight
    (out, in) -> (..., out). Under CPU autocast the product runs in the autocast dtype, as ``F.linear``
    would; a residual of another dtype is added after it (type promotion, as ``residual + out`` does)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    dtype = _fused_dtype(x, weight)
    if dtype is None:
        out = F.linear(x, weight, bias)
        if activation == "gelu":
            out = F.gelu(out)
        return out if residual is None else residual + out
    x = x.to(dtype)
    bias = None if bias is None else bias.to(dtype)
    packed = _packed_weight(weight, dtype, x.numel() // x.shape[-1])
    if residual is not None and residual.dtype == dtype and residual.shape == x.shape[:-1] + weight.shape[:1]:
        if activation is None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, packed, bias, "add")
        # oneDNN applies post-ops in order; the binary form takes one, so GELU + add is two steps
    out = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "gelu" if activation else "none", [],
                                             "none" if activation else "")
    return out if residual is None else residual + out


def linear_module(
    module: nn.Linear, x: Tensor, activation: Optional[str] = None, residual: Optional[Tensor] = None
) -> Tensor:
    """:func:`linear` with ``module``'s weight and bias; where the plain sequence runs, it calls ``module``
    itself (so its hooks fire, as they do for any module)."""
    if _fused_dtype(x, module.weight) is not None:
        return linear(x, module.weight, module.bias, activation, residual)
    out = module(x)
    if activation == "gelu":
        out = F.gelu(out)
    return out if residual is None else residual + out


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _fused_dtype(x: Tensor, weight: Tensor) -> Optional[torch.dtype]:
    """The dtype the fused product runs in, or None where the plain sequence must run."""
    if not _state["enabled"] or x.device.type != "cpu" or weight.device.type != "cpu" or torch.is_grad_enabled():
        return None
    if (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling() or not _onednn_available() or x.numel() == 0):
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype == torch.float32 and x.dtype == weight.dtype == torch.float32:
        return dtype
    if dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return dtype
    return None


def _packed_weight(weight: Tensor, dtype: torch.dtype, rows: int) -> Tensor:
    """``weight`` in ``dtype``, reordered into oneDNN's blocked layout (for products of about ``rows``
    rows); packed once per weight version and dtype."""
    # an inference tensor (made under torch.inference_mode, e.g. a cached reordering) has no version counter
    key = (-1 if weight.is_inference() else weight._version, weight.data_ptr())
    by_dtype = _packed_weights.setdefault(weight, {})
    entry = by_dtype.get(dtype)
    if entry is None or entry[0] != key:
        entry = by_dtype[dtype] = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype), rows))
    return entry[1]
