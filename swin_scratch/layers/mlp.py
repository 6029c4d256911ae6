"""Small building blocks shared by Swin and the text models."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swin_scratch.layers import fused


class Mlp(nn.Module):
    """fc1 -> activation -> dropout -> fc2 -> dropout (official Swin names ``fc1``/``fc2``)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: Optional[int] = None,
        out_features: Optional[int] = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop: float = 0.0,
    ):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """(..., in_features) -> (..., out_features), plus ``residual`` (that shape) when given.

        In eager CPU inference the GELU runs inside fc1 and the residual add inside fc2
        (:func:`swin_scratch.layers.fused.linear`): no pass of their own over the hidden or output tensor.
        """
        exact_gelu = type(self.act) is nn.GELU and self.act.approximate == "none"
        no_dropout = self.drop.p == 0.0 or not self.training
        if not (exact_gelu and no_dropout):
            out = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
            return out if residual is None else residual + out
        if torch.is_grad_enabled() and not torch.jit.is_tracing():
            out = _GeluLinear.apply(self.fc1(x), self.fc2.weight, self.fc2.bias)
            return out if residual is None else residual + out
        hidden = fused.linear_module(self.fc1, x, activation="gelu")  # (..., hidden_features)
        return fused.linear_module(self.fc2, hidden, residual=residual)


class _GeluLinear(torch.autograd.Function):
    """``linear(gelu(hidden))`` that keeps only ``hidden`` for backward and recomputes the GELU there.

    Autograd would keep both the GELU's input and its output, two (tokens x 4C) tensors: in a Swin-T
    training step at 800 x 1216 they are 40% of all the backbone keeps (docs/benchmarks/intel-xeon-avx512-2core.md);
    the GELU costs one elementwise pass to redo. Under autocast the products run in the dtype ``hidden`` came in.
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        output = F.linear(F.gelu(hidden), weight, bias)  # autocast, if on, applies here as in nn.Linear
        ctx.save_for_backward(hidden, weight)
        ctx.has_bias = bias is not None
        return output

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        hidden, weight = ctx.saved_tensors
        dtype = grad_output.dtype
        activated = F.gelu(hidden).to(dtype)  # (..., hidden_features)
        grad_flat = grad_output.reshape(-1, grad_output.shape[-1])  # (tokens, out_features)
        grad_weight = (grad_flat.t() @ activated.reshape(-1, activated.shape[-1])).to(weight.dtype)
        grad_bias = grad_flat.sum(0).to(weight.dtype) if ctx.has_bias else None
        grad_activated = grad_output @ weight.to(dtype)  # (..., hidden_features)
        grad_hidden = torch.ops.aten.gelu_backward(grad_activated.to(hidden.dtype), hidden)
        return grad_hidden, grad_weight, grad_bias


def drop_path(x: Tensor, drop_prob: float, training: bool) -> Tensor:
    """Stochastic depth: zero a whole residual branch per sample, rescale survivors by 1/keep."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = x.new_empty(mask_shape).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
