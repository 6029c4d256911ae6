"""detectron2's ``DefaultTrainer`` with the Swin recipe: optimizer, augmentation, evaluator, safe checkpoints."""
from __future__ import annotations

import logging
import os
import sys
import weakref
from typing import Any, Callable, TypeVar

from detectron2.data.build import _train_loader_from_config
from detectron2.engine import DefaultTrainer, create_ddp_model
from detectron2.engine.hooks import PeriodicCheckpointer
from detectron2.evaluation import DatasetEvaluators
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from swin_scratch.compat.bridges import load_inner_trainer_state, replace_data_loader, save_inner_trainer_state
from swin_scratch.detection.augmentation import build_train_augmentation
from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.dataset_checks import SafeDatasetMapper
from swin_scratch.detection.optimizer import build_swin_optimizer
from swin_scratch.engine.interruptions import (
    StopOnSignal,
    StopRequest,
    TrainingStopped,
    is_lost_peer_error,
    lost_rank_error,
    resume_command,
)
from swin_scratch.engine.mixed_precision import build_step_trainer
from swin_scratch.engine.rng import preserved_global_rngs, rng_state, set_rng_state
from swin_scratch.engine.train_loader import build_resumable_train_loader
from swin_scratch.weights.files import CheckpointError

logger = logging.getLogger("swin_scratch")
T = TypeVar("T")

class TrainingDivergedError(FloatingPointError):
    """A loss became NaN/inf; no checkpoint was written from the diverged state."""


def ddp_device_ids(device: str) -> dict[str, Any]:
    """CPU modules take ``device_ids=None`` (gloo); detectron2's default is the local GPU."""
    return {} if device.startswith("cuda") else {"device_ids": None}


class Trainer(DefaultTrainer):
    """The Swin detection trainer.

    Differs from ``DefaultTrainer`` in: AdamW parameter groups (:mod:`.optimizer`), the official
    multi-scale/crop augmentation, COCO evaluation with per-category tables and plots, atomic
    checkpoints with official-Swin import, DDP on CPU (gloo) as well as GPU, and a clear stop
    on non-finite losses.
    """

    def __init__(self, cfg):  # noqa: D107 - mirrors DefaultTrainer.__init__ but CPU-aware
        super(DefaultTrainer, self).__init__()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        # One data-order seed for all processes, kept so a resumed run can continue the same order.
        self._data_seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg, seed=self._data_seed)
        model = create_ddp_model(model, broadcast_buffers=False, **ddp_device_ids(cfg.MODEL.DEVICE))
        # AMP on CPU too (engine/mixed_precision.py)
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SwinCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self._stop_request = StopRequest()
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """detectron2's hooks (periodic checkpoints kept: ``SOLVER.CHECKPOINT_KEEP``), then the
        preemption stop (after the LR step and the periodic checkpoint)."""
        hooks = super().build_hooks()
        for hook in hooks:
            if isinstance(hook, PeriodicCheckpointer):
                hook.max_to_keep = self.cfg.SOLVER.CHECKPOINT_KEEP or None
        return hooks + [StopOnSignal(self._stop_request)]

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_swin_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg, seed: int | None = None, start_iter: int = 0):
        """The training loader (:mod:`.train_loader`): batch k is the same whether the run started
        at 0 or resumed at ``start_iter``; building it leaves the global RNGs untouched."""
        with preserved_global_rngs():
            mapper = SafeDatasetMapper(
                cfg,
                is_train=True,
                augmentations=build_train_augmentation(cfg),
                recompute_boxes=cfg.MODEL.MASK_ON and cfg.INPUT.CROP_BRANCH.ENABLED,
            )
            dataset_dicts = _train_loader_from_config(cfg, mapper=mapper)["dataset"]
            seed = seed if seed is not None else (cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed())
        return build_resumable_train_loader(
            dataset_dicts,
            mapper,
            images_per_process=cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size(),
            seed=seed,
            rank=comm.get_rank(),
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            start_batch=start_iter,
        )

    def resume_or_load(self, resume: bool = True) -> None:
        """detectron2's, but the start iteration follows the checkpoint actually loaded (the
        checkpointer may fall back to an earlier one, or to a fresh start)."""
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if self.checkpointer.resumed_from:
            self.start_iter = self.iter + 1
            # continue the data order where the checkpointed run stopped
            loader = self.build_train_loader(self.cfg, seed=self._data_seed, start_iter=self.start_iter)
            replace_data_loader(self._trainer, loader)

    def state_dict(self) -> dict[str, Any]:
        """Iteration, hooks, optimizer (and grad scaler) state, RNG states and the data-order seed."""
        state = super().state_dict()
        save_inner_trainer_state(state, self._trainer)
        state["rng"] = rng_state()
        state["data_seed"] = self._data_seed
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        rng = state_dict.pop("rng", None)
        self._data_seed = state_dict.pop("data_seed", self._data_seed)
        super().load_state_dict(state_dict)
        load_inner_trainer_state(state_dict, self._trainer)
        if rng is not None:
            set_rng_state(rng)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, output_folder: str | None = None):
        from swin_scratch.detection.evaluator import SwinCOCOEvaluator

        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return DatasetEvaluators([SwinCOCOEvaluator(dataset_name, output_dir=output_folder)])

    def train(self) -> dict[str, Any] | None:
        """detectron2's loop; SIGTERM/SIGINT stop it cleanly at a checkpoint (:mod:`.interruptions`)."""
        return train_until_stopped(self, self._stop_request, super().train)


def train_until_stopped(trainer: Any, stop_request: StopRequest, train: Callable[[], T],
                        fix: str = "lower SOLVER.BASE_LR or enable SOLVER.CLIP_GRADIENTS") -> T | None:
    """Run ``train()`` (a detectron2 training loop of ``trainer``, which has ``iter`` and ``checkpointer``)
    with the stop signals handled: SIGTERM/SIGINT end it at a checkpoint, with one line naming the
    checkpoint and the resume command (returns None); a NaN/inf loss becomes :class:`TrainingDivergedError`
    (``fix`` says what to change), a lost peer process :class:`LostRankError`."""
    with stop_request.installed():
        try:
            return train()
        except TrainingStopped as stop:
            if comm.is_main_process():
                print(f"{stop.signal_name}: stopped at iteration {stop.iteration}, checkpoint saved to "
                      f"{stop.checkpoint}; resume with: {resume_command()}", file=sys.stderr, flush=True)
            return None
        except FloatingPointError as err:
            last = trainer.checkpointer.get_checkpoint_file() if trainer.checkpointer.has_checkpoint() else None
            raise TrainingDivergedError(
                f"training diverged at iteration {trainer.iter}: a loss became NaN or infinite "
                f"({str(err).splitlines()[0]}). Last good checkpoint: {last or 'none written yet'}; "
                f"{fix}, then resume with --resume."
            ) from None
        except RuntimeError as err:
            if is_lost_peer_error(err) and not isinstance(err, CheckpointError):
                raise lost_rank_error(err, trainer.iter) from None
            raise
