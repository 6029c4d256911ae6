"""detectron2's ``DefaultTrainer`` with the Swin recipe: optimizer, augmentation, evaluator, safe checkpoints."""
from __future__ import annotations

import logging
import os
import sys
import weakref
from typing import Any, Callable, TypeVar

import torch
from detectron2.data.build import _train_loader_from_config
from detectron2.engine import DefaultTrainer, create_ddp_model
from detectron2.engine.hooks import CallbackHook, EvalHook, PeriodicCheckpointer
from detectron2.evaluation import DatasetEvaluators
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from swin_scratch.compat.bridges import load_inner_trainer_state, replace_data_loader, save_inner_trainer_state
from swin_scratch.detection.augmentation import build_train_augmentation
from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.dataset_checks import SafeDatasetMapper
from swin_scratch.detection.optimizer import build_swin_optimizer
from swin_scratch.detection.poolers import use_fast_roi_align_grad
from swin_scratch.engine.accumulation import accumulate_steps, batch_split, build_training_step, scale_to_job
from swin_scratch.engine.interruptions import (
    StopOnSignal,
    StopRequest,
    TrainingStopped,
    is_lost_peer_error,
    leaving_stop_signals_to_the_rank,
    lost_rank_error,
    resume_command,
    with_stop_signals_deferred,
)
from swin_scratch.engine.rng import preserved_global_rngs, rng_state, set_rng_state
from swin_scratch.engine.train_loader import build_resumable_train_loader
from swin_scratch.weights.files import CheckpointError

logger = logging.getLogger("swin_scratch")
T = TypeVar("T")


def rank_rng_state(rank_0: dict | None, per_rank: list[dict] | None, rank: int) -> dict | None:
    """The RNG states ``rank`` resumes with: its own from ``rng_per_rank``; rank 0's from a checkpoint of
    one process; none (the rank keeps its freshly seeded states) for a rank the checkpoint did not have."""
    if per_rank:
        return per_rank[rank] if rank < len(per_rank) else None
    return rank_0 if rank == 0 else None


class TrainingDivergedError(FloatingPointError):
    """A loss became NaN/inf; no checkpoint was written from the diverged state."""


def ddp_device_ids(device: str) -> dict[str, Any]:
    """CPU modules take ``device_ids=None`` (gloo); a GPU module the GPU this process uses (detectron2's
    default, the local rank, does not exist when each task sees only its own GPU)."""
    return {"device_ids": [torch.cuda.current_device()]} if device.startswith("cuda") else {"device_ids": None}


def evaluation_during_training(evaluate: Callable[[], Any]) -> Callable[[], Any]:
    """The EvalHook's function, made harmless to the training it interrupts.

    - It leaves the global RNGs as they were: with ``DATALOADER.NUM_WORKERS`` 0 the test loader's
      resizing draws from NumPy's global RNG in this process, so the training state (and a resumed
      run's) would depend on the worker count and on where evaluations fell.
    - It defers stop signals until it ends (its loader workers start in it and must outlive them);
      training then stops after this iteration as it would have anyway (:mod:`.interruptions`).
    """

    def evaluate_leaving_training_alone() -> Any:
        with preserved_global_rngs():
            return evaluate()

    return with_stop_signals_deferred(evaluate_leaving_training_alone)


class Trainer(DefaultTrainer):
    """The Swin detection trainer.

    Differs from ``DefaultTrainer`` in: AdamW parameter groups (:mod:`.optimizer`), the official
    multi-scale/crop augmentation, COCO evaluation with per-category tables and plots, atomic
    checkpoints with official-Swin import, DDP on CPU (gloo) as well as GPU, and a clear stop
    on non-finite losses.
    """

    def __init__(self, cfg, stop_request: StopRequest | None = None):
        """detectron2's ``DefaultTrainer.__init__``, CPU-aware.

        ``stop_request``: the caller's, when its signal handlers are already in place while this
        builds the loader (whose workers then start with a handler that cannot kill them).
        """
        super(DefaultTrainer, self).__init__()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = scale_to_job(cfg, comm.get_world_size())  # REFERENCE_WORLD_SIZE: processes x accumulation steps
        split = batch_split(cfg, comm.get_world_size())
        # detectron2's logger writes to stdout and OUTPUT_DIR/log.txt (rank 0)
        logging.getLogger("detectron2.swin_scratch").info(split.describe(cfg.SOLVER.BASE_LR))
        # One data-order seed for all processes, kept so a resumed run can continue the same order.
        self._data_seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg, seed=self._data_seed)
        model = create_ddp_model(model, broadcast_buffers=False, **ddp_device_ids(cfg.MODEL.DEVICE))
        # AMP on CPU too (engine/mixed_precision.py), gradient accumulation (engine/accumulation.py)
        self._trainer = build_training_step(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SwinCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self._rank_rng_states: list[dict[str, Any]] = []  # gathered for the next checkpoint only
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self._stop_request = stop_request or StopRequest()
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """detectron2's hooks (periodic checkpoints kept: ``SOLVER.CHECKPOINT_KEEP``), then the
        preemption stop (after the LR step, the periodic checkpoint and evaluation). First, on every
        rank, the gathering of every rank's RNG states before an iteration that ends in a checkpoint
        (detectron2 runs the checkpointer on rank 0 only, so it cannot do that collective itself)."""
        # (functions of the trainer, not bound methods: hooks must not keep the trainer alive)
        hooks = [CallbackHook(after_step=Trainer._gather_rank_rng_states_before_a_checkpoint), *super().build_hooks()]
        for hook in hooks:
            if isinstance(hook, PeriodicCheckpointer):
                hook.max_to_keep = self.cfg.SOLVER.CHECKPOINT_KEEP or None
            if isinstance(hook, EvalHook):
                hook._func = evaluation_during_training(hook._func)
        return hooks + [StopOnSignal(self._stop_request, before_save=Trainer._gather_rank_rng_states)]

    @classmethod
    def build_model(cls, cfg):
        """detectron2's model, its RoIAlign layers trained with the fast CPU gradient (detection/poolers.py)."""
        model = super().build_model(cfg)
        use_fast_roi_align_grad(model)
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_swin_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg, seed: int | None = None, start_iter: int = 0):
        """The training loader (:mod:`.train_loader`): batch k is the same whether the run started
        at 0 or resumed at ``start_iter``; building it leaves the global RNGs untouched. ``cfg`` is
        scaled to the job already (as in ``__init__``)."""
        with preserved_global_rngs():
            mapper = SafeDatasetMapper(
                cfg,
                is_train=True,
                augmentations=build_train_augmentation(cfg),
                recompute_boxes=cfg.MODEL.MASK_ON and cfg.INPUT.CROP_BRANCH.ENABLED,
            )
            dataset_dicts = _train_loader_from_config(cfg, mapper=mapper)["dataset"]
            seed = seed if seed is not None else (cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed())
        # With accumulation steps S, this process reads the shards of S ranks of a world S times larger.
        steps, world_size = accumulate_steps(cfg), comm.get_world_size()
        return build_resumable_train_loader(
            dataset_dicts,
            mapper,
            images_per_batch=batch_split(cfg, world_size).images_per_micro_batch,
            seed=seed,
            shards=[comm.get_rank() * steps + micro_step for micro_step in range(steps)],
            num_shards=world_size * steps,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            start_batch=start_iter,
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name: str):
        """detectron2's, with workers that leave SIGTERM/SIGINT to their rank (a stop signal that
        arrives during evaluation must not kill them; see :mod:`.interruptions`)."""
        loader = super().build_test_loader(cfg, dataset_name)
        loader.worker_init_fn = leaving_stop_signals_to_the_rank(loader.worker_init_fn)
        return loader

    def resume_or_load(self, resume: bool = True) -> None:
        """detectron2's, but the start iteration follows the checkpoint actually loaded (the
        checkpointer may fall back to an earlier one, or to a fresh start)."""
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if self.checkpointer.resumed_from:
            self.start_iter = self.iter + 1
            # continue the data order where the checkpointed run stopped
            loader = self.build_train_loader(self.cfg, seed=self._data_seed, start_iter=self.start_iter)
            replace_data_loader(self._trainer, loader)

    def _gather_rank_rng_states(self) -> None:
        """Every rank's RNG states, for the checkpoint rank 0 is about to write (each rank draws its
        own drop-path and proposal-sampling numbers; a resumed rank must continue its own stream).
        A collective: every rank calls it at the same point."""
        self._rank_rng_states = comm.all_gather(rng_state()) if comm.get_world_size() > 1 else []

    def _gather_rank_rng_states_before_a_checkpoint(self) -> None:
        """:meth:`_gather_rank_rng_states` in iterations that end with detectron2's periodic or final checkpoint."""
        next_iter = self.iter + 1
        if next_iter % self.cfg.SOLVER.CHECKPOINT_PERIOD == 0 or next_iter >= self.max_iter:
            self._gather_rank_rng_states()

    def state_dict(self) -> dict[str, Any]:
        """Iteration, hooks, optimizer (and grad scaler) state, RNG states (this rank's as ``rng``,
        every rank's as ``rng_per_rank``) and the data-order seed."""
        state = super().state_dict()
        save_inner_trainer_state(state, self._trainer)
        state["rng"] = rng_state()
        if self._rank_rng_states:
            state["rng_per_rank"], self._rank_rng_states = self._rank_rng_states, []
        state["data_seed"] = self._data_seed
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        rng = state_dict.pop("rng", None)
        rng = rank_rng_state(rng, state_dict.pop("rng_per_rank", None), comm.get_rank())
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
