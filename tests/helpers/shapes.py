"""Helpers for tests that train on a tiny shapes dataset through tools/train_net.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.tools import REPO, load_tool  # noqa: F401 - load_tool: re-exported for the tests that train

# A Swin Mask R-CNN small enough to take a training step in well under a second on one core.
TINY_TRAINING_OVERRIDES = [
    "MODEL.SWIN.EMBED_DIM", "16",
    "MODEL.SWIN.DEPTHS", "[1, 1, 1, 1]",
    "MODEL.SWIN.NUM_HEADS", "[1, 1, 2, 2]",
    "MODEL.FPN.OUT_CHANNELS", "16",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
    "MODEL.ROI_MASK_HEAD.CONV_DIM", "16",
    "INPUT.MIN_SIZE_TRAIN", "(96,)",
    "INPUT.MAX_SIZE_TRAIN", "128",
    "INPUT.MIN_SIZE_TEST", "96",
    "INPUT.MAX_SIZE_TEST", "128",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.WARMUP_ITERS", "0",
    "DATALOADER.NUM_WORKERS", "0",
    "TEST.EVAL_PERIOD", "0",
    "SEED", "7",
]


# The same tiny model and data as key=value overrides of the LazyConfig mask_rcnn_swin_t_fpn_3x.py
# (FPN and heads keep their widths: the recipe states them in several places)
TINY_LAZY_OVERRIDES = [
    "model.backbone.bottom_up.swin.embed_dim=16",
    "model.backbone.bottom_up.swin.depths=[1,1,1,1]",
    "model.backbone.bottom_up.swin.num_heads=[1,1,2,2]",
    "model.roi_heads.num_classes=4",
    "model.roi_heads.batch_size_per_image=64",
    "dataloader.train.dataset.names=shapes_train",
    "dataloader.test.dataset.names=shapes_val",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "dataloader.train.mapper.augmentations.min_sizes=[96]",
    "dataloader.train.mapper.augmentations.max_size=128",
    "dataloader.test.mapper.augmentations.0.short_edge_length=96",
    "dataloader.test.mapper.augmentations.0.max_size=128",
    "train.device=cpu",
    "train.init_checkpoint=",
    "train.eval_period=0",
    "train.log_period=1",
    "+train.seed=7",  # a key detectron2's common train config does not have (added, no warning)
    "lr_multiplier.warmup_length=0",
]


def make_tiny_shapes(root: Path, num_train: int = 12, num_val: int = 4) -> Path:
    subprocess.run(
        [sys.executable, str(REPO / "tools/make_shapes_dataset.py"), "--root", str(root),
         "--num-train", str(num_train), "--num-val", str(num_val), "--image-size", "96", "--seed", "3"],
        check=True, capture_output=True,
    )
    return root


def train_net_command(output_dir: Path, shapes_root: Path, *extra: str, args: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable, str(REPO / "tools/train_net.py"), "--config", "swin_shapes.yaml", *args,
        *TINY_TRAINING_OVERRIDES, "DATASETS.SHAPES_ROOT", str(shapes_root), "OUTPUT_DIR", str(output_dir), *extra,
    ]
