"""detectron2's ``DefaultTrainer`` with the Swin recipe: optimizer, augmentation, evaluator, safe checkpoints."""
from __future__ import annotations

import logging
import os
import weakref
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from detectron2.data import DatasetMapper, MetadataCatalog, build_detection_train_loader
from detectron2.data.catalog import DatasetCatalog
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer
from detectron2.evaluation import DatasetEvaluators
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from swin_scratch.detection.augmentation import build_train_augmentation
from swin_scratch.detection.checkpoint import SwinCheckpointer
from swin_scratch.detection.optimizer import build_swin_optimizer

logger = logging.getLogger("swin_scratch")

DEMO_CONFIG = "swin_shapes.yaml"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset named in the config is not on disk; the message says where we looked and what to do."""


class TrainingDivergedError(FloatingPointError):
    """A loss became NaN/inf; no checkpoint was written from the diverged state."""


def datasets_root() -> str:
    return os.environ.get("DETECTRON2_DATASETS", "datasets")


def check_datasets_available(dataset_names: list[str]) -> None:
    """Fail early, with one message, when a registered dataset's files are missing."""
    for name in dataset_names:
        if name not in DatasetCatalog.list():
            raise DatasetNotFoundError(
                f"dataset {name!r} is not registered; registered ones include "
                f"{', '.join(n for n in DatasetCatalog.list() if n.startswith(('coco_2017', 'shapes')))}"
            )
        metadata = MetadataCatalog.get(name)
        json_file = getattr(metadata, "json_file", None)
        image_root = getattr(metadata, "image_root", None)
        missing = [p for p in (json_file, image_root) if p and not os.path.exists(p)]
        if not missing:
            continue
        if name.startswith("shapes"):
            hint = "generate it with `python tools/make_shapes_dataset.py` (make demo does this)"
        else:
            hint = (
                f"set DETECTRON2_DATASETS to the folder that holds coco/ (now: {datasets_root()!r}), "
                f"or train on the built-in demo data instead: python tools/train_net.py --config {DEMO_CONFIG}"
            )
        raise DatasetNotFoundError(f"dataset {name!r} not found: looked for {' and '.join(missing)}; {hint}")


def create_ddp_model(model: torch.nn.Module, use_cuda: bool) -> torch.nn.Module:
    """DDP when there are several processes; CPU modules get ``device_ids=None`` (gloo)."""
    if comm.get_world_size() == 1:
        return model
    device_ids = [comm.get_local_rank()] if use_cuda else None
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


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
        if cfg.SOLVER.AMP.ENABLED and not cfg.MODEL.DEVICE.startswith("cuda"):
            raise ValueError("SOLVER.AMP.ENABLED needs a GPU (MODEL.DEVICE cuda); set SOLVER.AMP.ENABLED False on CPU")
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, use_cuda=cfg.MODEL.DEVICE.startswith("cuda"))
        self._trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SwinCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_swin_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = DatasetMapper(
            cfg,
            is_train=True,
            augmentations=build_train_augmentation(cfg),
            recompute_boxes=cfg.MODEL.MASK_ON and cfg.INPUT.CROP_BRANCH.ENABLED,
        )
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, output_folder: str | None = None):
        from swin_scratch.evaluation import SwinCOCOEvaluator

        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return DatasetEvaluators([SwinCOCOEvaluator(dataset_name, output_dir=output_folder)])

    def train(self) -> dict[str, Any] | None:
        try:
            return super().train()
        except FloatingPointError as err:
            last = self.checkpointer.get_checkpoint_file() if self.checkpointer.has_checkpoint() else None
            raise TrainingDivergedError(
                f"training diverged at iteration {self.iter}: a loss became NaN or infinite "
                f"({str(err).splitlines()[0]}). Last good checkpoint: {last or 'none written yet'}; "
                "lower SOLVER.BASE_LR or enable SOLVER.CLIP_GRADIENTS, then resume with --resume."
            ) from None


def build_model_for_inference(cfg):
    """A model in eval mode with ``MODEL.WEIGHTS`` loaded (through the Swin-aware checkpointer)."""
    model = Trainer.build_model(cfg)
    SwinCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    model.eval()
    return model
