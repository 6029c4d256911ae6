"""Mask R-CNN + Swin-T + FPN, the official 3x recipe, as a LazyConfig: detectron2's common Mask R-CNN
FPN model with the project's Swin backbone, AdamW lr 1e-4 / wd 0.05, multi-scale training 480-800
with the official random-crop branch, 36 epochs, drop-path 0.2. It builds the same model as
mask_rcnn_swin_t_fpn_3x.yaml (tests/detection/test_lazy_configs.py compares the two).

    swin-train --config mask_rcnn_swin_t_fpn_3x.py --num-gpus 8
    swin-train --config mask_rcnn_swin_t_fpn_3x.py --eval-only train.init_checkpoint=model_final.pth

Unlike the YAML (SOLVER.REFERENCE_WORLD_SIZE 8), a LazyConfig is not rescaled to the process count:
``dataloader.train.total_batch_size`` images per iteration are split over all processes.
"""
import torch
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from swin_scratch.detection.augmentation import train_augmentation
from swin_scratch.detection.backbone import SwinBackbone
from swin_scratch.detection.dataset_checks import SafeDatasetMapper
from swin_scratch.detection.evaluator import SwinCOCOEvaluator
from swin_scratch.detection.optimizer import swin_param_groups
from swin_scratch.models.swin import SwinTransformer

# ImageNet-1K Swin-T (microsoft/Swin-Transformer release v1.0.0), downloaded once and cached
IMAGENET_WEIGHTS = "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth"

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.backbone.bottom_up = L(SwinBackbone)(
    swin=L(SwinTransformer)(
        num_classes=0,  # detection mode: no classifier head
        embed_dim=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        drop_path_rate=0.2,
        out_indices=[0, 1, 2, 3],
    ),
    out_features=["stage2", "stage3", "stage4", "stage5"],  # strides 4, 8, 16, 32
)
# Swin is trained on RGB with ImageNet normalization (as Base-Swin-RCNN-FPN.yaml)
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper = L(SafeDatasetMapper)(
    is_train=True,
    # official multi-scale: short side 480..800 (step 32), long side <= 1333; with p = 0.5 resize to
    # 400/500/600, crop 384..600, then the same multi-scale resize
    augmentations=L(train_augmentation)(
        min_sizes=list(range(480, 801, 32)), max_size=1333, sample_style="choice", crop_branch=True
    ),
    image_format="RGB",
    use_instance_mask=True,
    recompute_boxes=True,  # boxes from the cropped masks
)
dataloader.train.total_batch_size = 16
dataloader.test.mapper.image_format = "RGB"  # test: short side 800, long side <= 1333 (detectron2's common)
dataloader.evaluator = L(SwinCOCOEvaluator)(
    dataset_name="${..test.dataset.names}", output_dir="${train.output_dir}/inference/${..test.dataset.names}"
)

optimizer = L(torch.optim.AdamW)(
    # no weight decay on norms, biases and relative-position tables (the model is set at run time)
    params=L(swin_param_groups)(
        base_lr="${..lr}",
        weight_decay="${..weight_decay}",
        no_decay_keys=["relative_position_bias_table", "absolute_pos_embed"],
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.05,
)

train = model_zoo.get_config("common/train.py").train
train.init_checkpoint = IMAGENET_WEIGHTS
train.output_dir = "output/mask_rcnn_swin_t_fpn_3x_lazy"
# 36 ep = 264000 iters * 16 images/iter / 117266 images/ep (COCO train2017 images with annotations)
train.max_iter = 264000
train.eval_period = 0  # evaluate once, at the end (as the YAML's TEST.EVAL_PERIOD 0)
train.checkpointer.period = 5000
train.amp.precision = "bf16"  # used when train.amp.enabled: "bf16" (CPU or GPU) or "fp16" (GPU)

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        # lr x0.1 after epochs 27 and 33 at 117266 / 16 = 7329 iters/ep: 198000 and 242000 iters
        milestones=[198000, 242000],
        num_updates=train.max_iter,
    ),
    warmup_length=1000 / train.max_iter,  # 1000 linear warm-up iterations from lr x 0.001
    warmup_factor=0.001,
)
