"""The official Swin multi-scale recipe's random-crop branch as a detectron2 augmentation."""
from __future__ import annotations

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


def build_train_augmentation(cfg) -> list[T.Augmentation]:
    """Multi-scale resize (+ the crop branch when enabled) followed by a horizontal flip."""
    resize = T.ResizeShortestEdge(
        cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
    )
    augmentations: list[T.Augmentation] = [resize]
    if cfg.INPUT.CROP_BRANCH.ENABLED:
        branch = cfg.INPUT.CROP_BRANCH
        crop_branch = [
            T.ResizeShortestEdge(list(branch.PRE_RESIZE_SIZES), cfg.INPUT.MAX_SIZE_TRAIN, "choice"),
            T.RandomCrop("absolute_range", tuple(branch.CROP_SIZE)),
            resize,
        ]
        augmentations = [RandomBranch(branch.PROB, crop_branch, [resize])]
    if cfg.INPUT.RANDOM_FLIP != "none":
        augmentations.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal", vertical=cfg.INPUT.RANDOM_FLIP == "vertical"
            )
        )
    return augmentations
