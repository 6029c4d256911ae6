"""Gradient accumulation: the recipe's batch on fewer devices (``SOLVER.ACCUMULATE_STEPS``).

One iteration is still one optimizer step (one LR-schedule step, one entry of ``MAX_ITER``); it
reads ``ACCUMULATE_STEPS`` micro-batches per process, one after the other, and steps once on the
mean of their gradients. ``SOLVER.IMS_PER_BATCH`` stays what it is in detectron2, the images of one
iteration, now summed over processes *and* micro-batches:

    effective batch = IMS_PER_BATCH = images per micro-batch x processes x ACCUMULATE_STEPS

so the recipe's IMS_PER_BATCH, BASE_LR and schedule apply unchanged: 16 images on 8 GPUs x 1 step,
or on 2 GPUs x 4 steps (2 images per forward pass either way).

Each process stands for ``ACCUMULATE_STEPS`` ranks of a larger world: its micro-batches are the
batches those ranks would read (:mod:`.train_loader`), and the DDP gradient average of 1 process x
2 steps equals that of 2 processes x 1 step up to the order of fp32 sums. Hence detectron2's
``REFERENCE_WORLD_SIZE`` scaling counts processes x steps as the world size: it keeps the images
per forward pass of the reference (IMS_PER_BATCH / REFERENCE_WORLD_SIZE) and scales batch, LR and
schedule by (processes x steps) / REFERENCE_WORLD_SIZE.

Resuming happens at iteration boundaries only (a checkpoint is written after an optimizer step),
so there is no accumulation state to save. Gradient clipping (detectron2 wraps the optimizer's
``step``) clips the accumulated gradient; with fp16 the grad scaler unscales it first.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
from detectron2.config import CfgNode
from detectron2.engine import DefaultTrainer, SimpleTrainer
from torch.nn.parallel import DistributedDataParallel

from swin_scratch.detection.config import ConfigError
from swin_scratch.engine.mixed_precision import MixedPrecisionTrainer, build_step_trainer
from swin_scratch.precision import autocast

logger = logging.getLogger("swin_scratch")


def accumulate_steps(cfg: CfgNode) -> int:
    """``SOLVER.ACCUMULATE_STEPS``, checked: a whole number >= 1."""
    steps = cfg.SOLVER.ACCUMULATE_STEPS
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(
            f"SOLVER.ACCUMULATE_STEPS must be a whole number >= 1 (micro-batches per optimizer step; 1 = no "
            f"accumulation), got {steps!r}"
        )
    return steps


def scale_to_job(cfg: CfgNode, world_size: int) -> CfgNode:
    """detectron2's ``REFERENCE_WORLD_SIZE`` scaling, counting each accumulation step as a process."""
    return DefaultTrainer.auto_scale_workers(cfg, world_size * accumulate_steps(cfg))


@dataclass(frozen=True)
class BatchSplit:
    """How one iteration's images are split over processes and micro-batches."""

    images_per_iteration: int  # the effective batch: SOLVER.IMS_PER_BATCH (after scaling)
    processes: int
    accumulate_steps: int

    @property
    def images_per_micro_batch(self) -> int:
        """Images of one forward pass of one process."""
        return self.images_per_iteration // (self.processes * self.accumulate_steps)

    def describe(self, base_lr: float) -> str:
        return (f"effective batch {self.images_per_iteration} images per iteration = "
                f"{self.images_per_micro_batch} per micro-batch x {self.processes} process(es) x "
                f"{self.accumulate_steps} accumulation step(s); base LR {base_lr:g}")


def batch_split(cfg: CfgNode, world_size: int) -> BatchSplit:
    """The split of ``cfg`` (already scaled, :func:`scale_to_job`) on ``world_size`` processes; a
    batch that does not divide evenly is a :class:`ConfigError` naming the numbers and a fix."""
    steps = accumulate_steps(cfg)
    images, parts = cfg.SOLVER.IMS_PER_BATCH, world_size * steps
    if images < parts or images % parts:
        raise ConfigError(
            f"SOLVER.IMS_PER_BATCH {images} does not split into {world_size} process(es) x {steps} accumulation "
            f"step(s) (it must be a multiple of {parts}); change SOLVER.IMS_PER_BATCH or SOLVER.ACCUMULATE_STEPS"
        )
    return BatchSplit(images, world_size, steps)


def check_batch_split(cfg: CfgNode, world_size: int) -> BatchSplit:
    """What :func:`batch_split` says about ``cfg`` once scaled to the job (before any process starts)."""
    return batch_split(scale_to_job(cfg.clone(), world_size), world_size)


class GradientAccumulationTrainer(MixedPrecisionTrainer):
    """An iteration of ``steps`` forward/backward passes on consecutive micro-batches and one
    optimizer step on the mean gradient (fp32, or under autocast like :class:`MixedPrecisionTrainer`).

    Each micro-batch's loss is divided by ``steps`` before backward, so the summed gradient is the
    mean over micro-batches, as DDP's gradient is the mean over ranks. Under DDP the gradients are
    all-reduced once, on the last micro-batch (``no_sync`` before). The logged losses are the means
    over micro-batches; a non-finite one stops training before the optimizer steps (detectron2's
    metrics writer raises).
    """

    def __init__(self, model, data_loader, optimizer, steps: int, precision: str = "fp32",
                 device_type: str = "cpu"):
        super().__init__(model, data_loader, optimizer, precision, device_type)
        self.accumulate_steps = steps

    def run_step(self) -> None:
        assert self.model.training, "[GradientAccumulationTrainer] model was changed to eval mode!"
        self.optimizer.zero_grad()
        mean_losses: dict[str, torch.Tensor] = {}
        data_time = 0.0
        for micro_step in range(self.accumulate_steps):
            start = time.perf_counter()
            data = next(self._data_loader_iter)
            data_time += time.perf_counter() - start
            with self._gradient_sync(last=micro_step == self.accumulate_steps - 1):
                loss_dict = self._backward(data)
            for name, value in loss_dict.items():
                mean_losses[name] = mean_losses.get(name, 0.0) + value.detach() / self.accumulate_steps
        self._write_metrics(mean_losses, data_time)
        self._optimizer_step()

    def _gradient_sync(self, last: bool) -> ContextManager:
        """DDP all-reduces gradients only after the last micro-batch's backward."""
        if last or not isinstance(self.model, DistributedDataParallel):
            return contextlib.nullcontext()
        return self.model.no_sync()

    def _backward(self, data: Any) -> dict[str, torch.Tensor]:
        with autocast(self.precision, self.device_type):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                loss_dict = {"total_loss": loss_dict}
            losses = sum(loss_dict.values()) / self.accumulate_steps
        (losses if self.grad_scaler is None else self.grad_scaler.scale(losses)).backward()
        return loss_dict

    def _optimizer_step(self) -> None:
        if self.grad_scaler is None:
            self.optimizer.step()
            return
        self.grad_scaler.unscale_(self.optimizer)  # detectron2's clipping, inside step(), sees true gradients
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()


def build_training_step(cfg: CfgNode, model, data_loader, optimizer) -> SimpleTrainer:
    """What runs one iteration: :class:`GradientAccumulationTrainer` when ``SOLVER.ACCUMULATE_STEPS``
    > 1, else detectron2's ``SimpleTrainer`` or :class:`MixedPrecisionTrainer` (unchanged)."""
    steps = accumulate_steps(cfg)
    if steps == 1:
        return build_step_trainer(cfg, model, data_loader, optimizer)
    precision = cfg.SOLVER.AMP.PRECISION if cfg.SOLVER.AMP.ENABLED else "fp32"
    return GradientAccumulationTrainer(model, data_loader, optimizer, steps, precision,
                                       torch.device(cfg.MODEL.DEVICE).type)
