"""Mixed-precision training on CPU as well as GPU: detectron2's ``AMPTrainer`` asserts CUDA.

For detectron2 v0.6 (fp16 only, ``torch.cuda.amp``) and upstream main (adds a ``precision`` dtype,
still CUDA-only). :class:`MixedPrecisionTrainer` is ``SimpleTrainer.run_step`` under
:func:`swin_scratch.precision.autocast`: bf16 on CPU or GPU (no scaling needed, bf16 has
fp32's exponent range), fp16 on GPU with a gradient scaler.
"""
from __future__ import annotations

import time
from typing import Any

import torch
from detectron2.engine import SimpleTrainer

from swin_scratch.precision import autocast, check_precision


class MixedPrecisionTrainer(SimpleTrainer):
    """``SimpleTrainer`` whose forward runs under autocast(``precision``) on ``device_type``."""

    def __init__(self, model, data_loader, optimizer, precision: str = "bf16", device_type: str = "cpu"):
        check_precision(precision, device_type, source="SOLVER.AMP.PRECISION")
        super().__init__(model, data_loader, optimizer)
        self.precision = precision
        self.device_type = device_type
        # fp16 gradients underflow without loss scaling; bf16 does not need it.
        self.grad_scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None

    def run_step(self) -> None:
        assert self.model.training, "[MixedPrecisionTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with autocast(self.precision, self.device_type):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                loss_dict = {"total_loss": loss_dict}
            losses = sum(loss_dict.values())
        self.optimizer.zero_grad()
        if self.grad_scaler is None:
            losses.backward()
            self._write_metrics(loss_dict, data_time)
            self.optimizer.step()
            return
        self.grad_scaler.scale(losses).backward()
        self._write_metrics(loss_dict, data_time)
        self.grad_scaler.unscale_(self.optimizer)  # detectron2's gradient clipping, inside step(), sees true gradients
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])


def build_step_trainer(cfg, model, data_loader, optimizer) -> SimpleTrainer:
    """``SimpleTrainer``, or :class:`MixedPrecisionTrainer` when ``SOLVER.AMP.ENABLED``."""
    return step_trainer(model, data_loader, optimizer, cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.PRECISION,
                        torch.device(cfg.MODEL.DEVICE).type)


def step_trainer(model, data_loader, optimizer, amp: bool, precision: str, device_type: str) -> SimpleTrainer:
    """``SimpleTrainer``, or with ``amp`` a :class:`MixedPrecisionTrainer` in ``precision`` on ``device_type``."""
    if not amp:
        return SimpleTrainer(model, data_loader, optimizer)
    return MixedPrecisionTrainer(model, data_loader, optimizer, precision, device_type)
