"""The training augmentation: the official multi-scale recipe, its random-crop branch, the flip."""
from __future__ import annotations

import numpy as np
from detectron2.data import transforms as T

from swin_scratch.detection.augmentation import RandomBranch, build_train_augmentation
from swin_scratch.detection.config import get_swin_cfg


def _apply(augmentations: list[T.Augmentation], image: np.ndarray) -> tuple[np.ndarray, list[T.Transform]]:
    aug_input = T.AugInput(image)
    transforms = T.AugmentationList(augmentations)(aug_input)
    return aug_input.image, list(transforms)


def test_the_coco_recipe_resizes_multi_scale_with_the_crop_branch_then_flips():
    cfg = get_swin_cfg("mask_rcnn_swin_t_fpn_3x.yaml")
    augmentations = build_train_augmentation(cfg)
    assert cfg.INPUT.CROP_BRANCH.ENABLED
    assert isinstance(augmentations[0], RandomBranch) and isinstance(augmentations[-1], T.RandomFlip)


def test_the_crop_branch_crops_within_its_size_range_then_resizes_to_a_training_scale():
    cfg = get_swin_cfg("mask_rcnn_swin_t_fpn_3x.yaml", ["INPUT.CROP_BRANCH.PROB", "1.0", "INPUT.RANDOM_FLIP", "none"])
    np.random.seed(0)
    sizes = set()
    for _ in range(10):
        image, transforms = _apply(build_train_augmentation(cfg), np.zeros((900, 1200, 3), dtype=np.uint8))
        assert any(isinstance(t, T.CropTransform) for t in transforms)
        sizes.add(min(image.shape[:2]))
        assert max(image.shape[:2]) <= cfg.INPUT.MAX_SIZE_TRAIN
    assert sizes <= set(cfg.INPUT.MIN_SIZE_TRAIN) | {cfg.INPUT.MAX_SIZE_TRAIN}  # short side capped by MAX_SIZE
    assert len(sizes) > 1  # multi-scale


def test_without_the_branch_every_short_side_is_one_of_the_training_scales():
    cfg = get_swin_cfg("mask_rcnn_swin_t_fpn_3x.yaml", ["INPUT.CROP_BRANCH.ENABLED", "False"])
    np.random.seed(1)
    for _ in range(10):
        image, transforms = _apply(build_train_augmentation(cfg), np.zeros((600, 800, 3), dtype=np.uint8))
        assert not any(isinstance(t, T.CropTransform) for t in transforms)
        assert min(image.shape[:2]) in cfg.INPUT.MIN_SIZE_TRAIN


def test_random_branch_takes_the_branch_with_its_probability():
    np.random.seed(2)
    taken = 0
    for _ in range(400):
        aug_input = T.AugInput(np.zeros((20, 20, 3), dtype=np.uint8))
        crop, resize = T.RandomCrop("absolute", (10, 10)), T.ResizeShortestEdge([20], 20, "choice")
        transforms = RandomBranch(0.25, [crop], [resize])(aug_input)
        taken += any(isinstance(t, T.CropTransform) for t in transforms)
    assert 0.18 < taken / 400 < 0.32
