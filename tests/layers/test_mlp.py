"""Mlp's GELU recomputation: the same outputs and gradients as plain autograd, with less kept for backward."""
import pytest
import torch
from torch import nn

from swin_scratch.layers.mlp import Mlp


def _plain(mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
    return mlp.fc2(mlp.act(mlp.fc1(x)))


def _outputs_and_grads(mlp: Mlp, x: torch.Tensor, forward) -> list[torch.Tensor]:
    x.grad = None
    mlp.zero_grad()
    out = forward(mlp, x)
    (out.float() ** 2).sum().backward()
    return [out.detach(), x.grad] + [p.grad for p in mlp.parameters()]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_recomputed_gelu_gives_plain_autograds_outputs_and_gradients(precision):
    mlp = Mlp(16, 64)
    x = torch.randn(2, 5, 7, 16, requires_grad=True)
    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        ours = _outputs_and_grads(mlp, x, Mlp.forward)
        plain = _outputs_and_grads(mlp, x, _plain)
    for a, b in zip(ours, plain):
        assert a.dtype == b.dtype and torch.equal(a, b)


def _bytes_kept_for_backward(module: nn.Module, forward) -> int:
    """Bytes of the activations (not the parameters) that autograd keeps for backward."""
    parameters = {p.untyped_storage().data_ptr() for p in module.parameters()}
    kept = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(kept.values())


def test_the_gelu_output_is_not_kept_for_backward():
    mlp = Mlp(32, 128)
    x = torch.randn(1000, 32, requires_grad=True)
    hidden_bytes = 1000 * 128 * 4
    plain = _bytes_kept_for_backward(mlp, lambda: _plain(mlp, x))
    ours = _bytes_kept_for_backward(mlp, lambda: mlp(x))
    assert plain - ours == hidden_bytes


def test_dropout_and_other_activations_take_the_plain_path():
    for mlp in (Mlp(8, 16, drop=0.1), Mlp(8, 16, act_layer=nn.ReLU), Mlp(8, 16, act_layer=lambda: nn.GELU("tanh"))):
        x = torch.randn(4, 8, requires_grad=True)
        assert mlp(x).grad_fn.name() != "_GeluLinearBackward"
    assert Mlp(8, 16)(torch.randn(4, 8)).grad_fn.name() == "_GeluLinearBackward"
