"""Cascade Mask R-CNN + Swin-B (ImageNet-22K) + FPN with ViTDet's recipe: large-scale jitter (LSJ) at
1024 x 1024, batch 64, AdamW lr 4e-5, 50 epochs, LayerNorm in FPN and heads, fp16 mixed precision
(detectron2 projects/ViTDet, COCO cascade_mask_rcnn_swin_b_in21k_50ep.py: 53.9 box / 46.2 mask AP).
The model is mask_rcnn_swin_t_fpn_3x.py's with a Swin-B backbone and ViTDet's cascade heads.

    swin-train --config cascade_mask_rcnn_swin_b_in21k_50ep.py --num-gpus 64 --num-machines 8 ...

Differences from ViTDet's file: the project's Swin class (official state-dict keys, so the official
ImageNet-22K release file loads as it is), and its AdamW groups (biases are not decayed either, as
in the official Swin detection recipe).
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from swin_scratch.compat.bridges import fpn_square_pad_supported
from swin_scratch.detection.dataset_checks import SafeDatasetMapper
from swin_scratch.detection.norm import ChannelLayerNorm

from .mask_rcnn_swin_t_fpn_3x import dataloader, model, optimizer, train

IMAGE_SIZE = 1024
# ImageNet-22K Swin-B (microsoft/Swin-Transformer release v1.0.0), as ViTDet starts from
IMAGENET_22K_WEIGHTS = (
    "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224_22k.pth"
)

# Swin-B; ViTDet's drop-path 0.4
model.backbone.bottom_up.swin.embed_dim = 128
model.backbone.bottom_up.swin.depths = [2, 2, 18, 2]
model.backbone.bottom_up.swin.num_heads = [4, 8, 16, 32]
model.backbone.bottom_up.swin.drop_path_rate = 0.4

# ViTDet's heads: LayerNorm in FPN, two convs in the RPN head, three cascade stages of 4conv-1fc box heads
model.backbone.norm = ChannelLayerNorm
model.proposal_generator.head.conv_dims = [-1, -1]
[model.roi_heads.pop(key) for key in ("box_head", "box_predictor", "proposal_matcher")]
model.roi_heads.update(
    _target_=CascadeROIHeads,
    box_heads=[
        L(FastRCNNConvFCHead)(
            input_shape=ShapeSpec(channels=256, height=7, width=7),
            conv_dims=[256, 256, 256, 256],
            fc_dims=[1024],
            conv_norm=ChannelLayerNorm,
        )
        for _ in range(3)
    ],
    box_predictors=[
        L(FastRCNNOutputLayers)(
            input_shape=ShapeSpec(channels=1024),
            test_score_thresh=0.05,
            box2box_transform=L(Box2BoxTransform)(weights=(w1, w1, w2, w2)),
            cls_agnostic_bbox_reg=True,
            num_classes="${...num_classes}",
        )
        for (w1, w2) in [(10, 5), (20, 10), (30, 15)]  # stage IoU 0.5, 0.6, 0.7
    ],
    proposal_matchers=[
        L(Matcher)(thresholds=[iou], labels=[0, 1], allow_low_quality_matches=False) for iou in [0.5, 0.6, 0.7]
    ],
)
model.roi_heads.mask_head.conv_norm = ChannelLayerNorm

# Large-scale jitter: flip, resize to 0.1x..2.0x of 1024 x 1024 (aspect kept), random 1024 x 1024 crop
dataloader.train.mapper = L(SafeDatasetMapper)(
    is_train=True,
    augmentations=[
        L(T.RandomFlip)(horizontal=True),
        L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=IMAGE_SIZE, target_width=IMAGE_SIZE),
        L(T.FixedSizeCrop)(crop_size=(IMAGE_SIZE, IMAGE_SIZE), pad=False),
    ],
    image_format="RGB",
    use_instance_mask=True,
    recompute_boxes=True,  # boxes from the cropped masks
)
dataloader.train.total_batch_size = 64
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=IMAGE_SIZE, max_size=IMAGE_SIZE)]
if fpn_square_pad_supported():  # batches padded to 1024 x 1024, as ViTDet
    model.backbone.square_pad = IMAGE_SIZE
else:  # detectron2 v0.6: the training crops are padded to the square instead (test images to multiples of 32)
    dataloader.train.mapper.augmentations[2].pad = True

optimizer.lr = 4e-5
optimizer.weight_decay = 0.05

train.init_checkpoint = IMAGENET_22K_WEIGHTS
train.output_dir = "output/cascade_mask_rcnn_swin_b_in21k_50ep"
train.amp.enabled = True
train.amp.precision = "fp16"
train.ddp.fp16_compression = True
train.eval_period = 5000
# 100 ep = 184375 iters * 64 images/iter / 118000 images/ep (ViTDet's count); 50 ep is half of it
train.max_iter = 184375 // 2

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        # ViTDet's 100-ep milestones (88.9 % and 96.3 % of the run), halved with the schedule
        milestones=[163889 // 2, 177546 // 2],
        num_updates=train.max_iter,
    ),
    warmup_length=250 / train.max_iter,  # 250 linear warm-up iterations from lr x 0.001
    warmup_factor=0.001,
)
