"""The LazyConfig recipes (swin_scratch/configs/*.py): the Mask R-CNN Swin-T one is the YAML's model and
recipe in LazyConfig form; the Cascade Swin-B one is ViTDet's LSJ 50-epoch recipe on the project's Swin."""
from __future__ import annotations

import pytest
import torch
from detectron2.config import instantiate
from detectron2.modeling import build_model

from swin_scratch.compat.bridges import fpn_square_pad_supported
from swin_scratch.detection.augmentation import build_train_augmentation
from swin_scratch.detection.backbone import SwinBackbone
from swin_scratch.detection.norm import ChannelLayerNorm
from swin_scratch.model_zoo import get_config

COCO_TRAIN_IMAGES = 117266  # train2017 images with annotations (the official epoch)
VITDET_EPOCH_IMAGES = 118000  # ViTDet's round count


@pytest.fixture(scope="module")
def yaml_and_lazy_models():
    """Mask R-CNN Swin-T from the YAML and from the LazyConfig, eval mode, the LazyConfig one holding the
    YAML one's weights; every detection kept (random heads score low)."""
    cfg = get_config("mask_rcnn_swin_t_fpn_3x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    lazy = get_config("mask_rcnn_swin_t_fpn_3x.py")
    lazy.model.roi_heads.box_predictor.test_score_thresh = 0.0
    from_yaml, from_lazy = build_model(cfg).eval(), instantiate(lazy.model).eval()
    return from_yaml, from_lazy


@pytest.mark.xdist_group("yaml_and_lazy_models")
def test_yaml_and_lazyconfig_mask_rcnn_swin_t_have_the_same_parameters(yaml_and_lazy_models):
    from_yaml, from_lazy = yaml_and_lazy_models
    assert isinstance(from_lazy.backbone.bottom_up, SwinBackbone)
    yaml_shapes = {name: tuple(p.shape) for name, p in from_yaml.named_parameters()}
    lazy_shapes = {name: tuple(p.shape) for name, p in from_lazy.named_parameters()}
    assert lazy_shapes == yaml_shapes
    assert sum(p.numel() for p in from_lazy.parameters()) == sum(p.numel() for p in from_yaml.parameters())
    assert from_lazy.state_dict().keys() == from_yaml.state_dict().keys()  # buffers too (pixel mean/std)


@pytest.mark.slow
@pytest.mark.xdist_group("yaml_and_lazy_models")
def test_yaml_and_lazyconfig_mask_rcnn_swin_t_give_the_same_outputs_for_the_same_weights(yaml_and_lazy_models):
    from_yaml, from_lazy = yaml_and_lazy_models
    from_lazy.load_state_dict(from_yaml.state_dict())
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)
    with torch.no_grad():
        expected, actual = (model([{"image": image}])[0]["instances"] for model in (from_yaml, from_lazy))
    assert len(expected) > 0
    assert torch.equal(actual.pred_boxes.tensor, expected.pred_boxes.tensor)
    assert torch.equal(actual.scores, expected.scores) and torch.equal(actual.pred_classes, expected.pred_classes)
    assert torch.equal(actual.pred_masks, expected.pred_masks)


def test_mask_rcnn_lazyconfig_follows_the_yaml_recipe():
    cfg, lazy = get_config("mask_rcnn_swin_t_fpn_3x.yaml"), get_config("mask_rcnn_swin_t_fpn_3x.py")
    assert (lazy.optimizer.lr, lazy.optimizer.weight_decay) == (cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY)
    assert (lazy.optimizer.lr, lazy.optimizer.weight_decay) == (1e-4, 0.05)
    assert tuple(lazy.optimizer.betas) == tuple(cfg.SOLVER.BETAS)
    assert list(lazy.optimizer.params.no_decay_keys) == list(cfg.SOLVER.NO_WEIGHT_DECAY_KEYS)
    assert lazy.dataloader.train.total_batch_size == cfg.SOLVER.IMS_PER_BATCH == 16
    assert lazy.train.max_iter == cfg.SOLVER.MAX_ITER
    assert lazy.train.max_iter * 16 / COCO_TRAIN_IMAGES == pytest.approx(36, rel=0.01)
    assert list(lazy.lr_multiplier.scheduler.milestones) == list(cfg.SOLVER.STEPS)
    assert lazy.lr_multiplier.warmup_length * lazy.train.max_iter == cfg.SOLVER.WARMUP_ITERS
    assert lazy.lr_multiplier.warmup_factor == cfg.SOLVER.WARMUP_FACTOR
    assert lazy.model.backbone.bottom_up.swin.drop_path_rate == cfg.MODEL.SWIN.DROP_PATH_RATE == 0.2
    assert lazy.train.init_checkpoint == cfg.MODEL.WEIGHTS
    # the same augmentation: multi-scale 480..800 with the official random-crop branch, then a flip
    lazy_augmentations = instantiate(lazy.dataloader.train.mapper.augmentations)
    assert repr(lazy_augmentations) == repr(build_train_augmentation(cfg))
    assert "RandomCrop" in repr(lazy_augmentations) and lazy.dataloader.train.mapper.recompute_boxes
    test_resize = lazy.dataloader.test.mapper.augmentations[0]
    assert (test_resize.short_edge_length, test_resize.max_size) == (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    assert lazy.dataloader.train.mapper.image_format == lazy.dataloader.test.mapper.image_format == cfg.INPUT.FORMAT


def test_cascade_swin_b_lazyconfig_is_vitdets_lsj_50_epoch_recipe():
    lazy = get_config("cascade_mask_rcnn_swin_b_in21k_50ep.py")
    assert lazy.dataloader.train.total_batch_size == 64
    assert lazy.train.max_iter * 64 / VITDET_EPOCH_IMAGES == pytest.approx(50, rel=0.001)
    assert [m / lazy.train.max_iter for m in lazy.lr_multiplier.scheduler.milestones] == pytest.approx([0.889, 0.963],
                                                                                                       abs=1e-3)
    assert (lazy.optimizer.lr, lazy.optimizer.weight_decay) == (4e-5, 0.05)
    assert (lazy.train.amp.enabled, lazy.train.amp.precision) == (True, "fp16")
    assert lazy.train.init_checkpoint.endswith("swin_base_patch4_window7_224_22k.pth")
    swin = lazy.model.backbone.bottom_up.swin
    assert (swin.embed_dim, list(swin.depths), list(swin.num_heads), swin.drop_path_rate) == (
        128, [2, 2, 18, 2], [4, 8, 16, 32], 0.4)
    flip, jitter, crop = instantiate(lazy.dataloader.train.mapper.augmentations)
    assert (jitter.min_scale, jitter.max_scale, jitter.target_height, jitter.target_width) == (0.1, 2.0, 1024, 1024)
    assert tuple(crop.crop_size) == (1024, 1024)
    # 1024 x 1024 batches: FPN's square_pad where detectron2 has it, padded crops otherwise
    assert lazy.model.backbone.get("square_pad") == 1024 if fpn_square_pad_supported() else crop.pad


@pytest.mark.slow
def test_cascade_swin_b_lazyconfig_builds_vitdets_heads_and_runs():
    lazy = get_config("cascade_mask_rcnn_swin_b_in21k_50ep.py")
    lazy.model.backbone.bottom_up.swin.depths = [1, 1, 1, 1]  # keep the test fast; widths stay Swin-B's
    lazy.model.proposal_generator.post_nms_topk = [1000, 50]
    model = instantiate(lazy.model).eval()
    heads = model.roi_heads
    assert type(heads).__name__ == "CascadeROIHeads" and len(heads.box_head) == 3
    assert sum(isinstance(m, ChannelLayerNorm) for m in model.backbone.modules()) == 8  # 4 lateral + 4 output convs
    assert sum(isinstance(m, ChannelLayerNorm) for m in heads.box_head[0].modules()) == 4
    assert len(model.proposal_generator.rpn_head.conv) == 2  # two convs in the RPN head
    with torch.no_grad():
        (output,) = model([{"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)}])
    assert output["instances"].image_size == (64, 96)


def test_channel_layer_norm_is_layer_norm_over_the_channels_of_each_pixel():
    norm = ChannelLayerNorm(8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 5, 7)
    expected = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias, eps=1e-6)
    torch.testing.assert_close(norm(x), expected.permute(0, 3, 1, 2), atol=1e-5, rtol=1e-5)
