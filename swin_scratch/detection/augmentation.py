"""The official Swin multi-scale recipe's random-crop branch as a detectron2 augmentation."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from detectron2.data import transforms as T


class RandomBranch(T.Augmentation):
    """With probability ``prob`` run ``branch`` (a list of augmentations) instead of ``default``.

    The official recipe (mmdet ``AutoAugment`` with two policies) picks between plain multi-scale
    resizing and resize -> random crop -> multi-scale resize.
    """

    def __init__(self, prob: float, branch: list[T.Augmentation], default: list[T.Augmentation]):
        super().__init__()
        self.prob = prob
        self.branch = T.AugmentationList(branch)
        self.default = T.AugmentationList(default)

    def __call__(self, aug_input: T.AugInput) -> T.Transform:
        chosen = self.branch if np.random.rand() < self.prob else self.default
        return chosen(aug_input)

    def get_transform(self, *args):  # pragma: no cover - __call__ is the entry point
        raise NotImplementedError("RandomBranch applies its sub-augmentations through __call__")


def train_augmentation(
    min_sizes: Sequence[int],
    max_size: int,
    sample_style: str = "choice",
    *,
    crop_branch: bool = False,
    crop_prob: float = 0.5,
    crop_pre_resize_sizes: Sequence[int] = (400, 500, 600),
    crop_size: Sequence[int] = (384, 600),
    flip: str = "horizontal",
) -> list[T.Augmentation]:
    """Multi-scale resize (short side one of ``min_sizes``, long side <= ``max_size``), with probability
    ``crop_prob`` the official resize -> random crop -> resize branch instead (``crop_branch``), then a flip.

    The one definition of the training augmentation: the YAML configs reach it through
    :func:`build_train_augmentation`, the LazyConfig recipes call it by name.
    """
    resize = T.ResizeShortestEdge(list(min_sizes), max_size, sample_style)
    augmentations: list[T.Augmentation] = [resize]
    if crop_branch:
        branch = [
            T.ResizeShortestEdge(list(crop_pre_resize_sizes), max_size, "choice"),
            T.RandomCrop("absolute_range", tuple(crop_size)),
            resize,
        ]
        augmentations = [RandomBranch(crop_prob, branch, [resize])]
    if flip != "none":
        augmentations.append(T.RandomFlip(horizontal=flip == "horizontal", vertical=flip == "vertical"))
    return augmentations


def build_train_augmentation(cfg) -> list[T.Augmentation]:
    """:func:`train_augmentation` as the ``INPUT`` keys say (``MIN_SIZE_TRAIN`` ... ``CROP_BRANCH``)."""
    branch = cfg.INPUT.CROP_BRANCH
    return train_augmentation(
        cfg.INPUT.MIN_SIZE_TRAIN,
        cfg.INPUT.MAX_SIZE_TRAIN,
        cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING,
        crop_branch=branch.ENABLED,
        crop_prob=branch.PROB,
        crop_pre_resize_sizes=branch.PRE_RESIZE_SIZES,
        crop_size=branch.CROP_SIZE,
        flip=cfg.INPUT.RANDOM_FLIP,
    )
