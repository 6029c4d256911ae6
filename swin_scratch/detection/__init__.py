"""detectron2 glue. Importing this package registers the Swin backbones in ``BACKBONE_REGISTRY``
(``build_swin_backbone``, ``build_swin_fpn_backbone``, ``build_retinanet_swin_fpn_backbone``) and
``ClassAgnosticNMSROIHeads`` / ``ClassAgnosticNMSCascadeROIHeads`` in ``ROI_HEADS_REGISTRY`` and
``MaskBoxRCNN`` in ``META_ARCH_REGISTRY``."""
from .backbone import (
    SwinBackbone,
    build_retinanet_swin_fpn_backbone,
    build_swin_backbone,
    build_swin_fpn_backbone,
)
from .config import add_swin_config, get_swin_cfg, resolve_config_path
from .meta_arch import MaskBoxRCNN, blend_boxes_with_masks
from .optimizer import build_swin_optimizer, swin_param_groups
from .roi_heads import ClassAgnosticNMSCascadeROIHeads, ClassAgnosticNMSROIHeads, class_agnostic_nms

__all__ = [
    "ClassAgnosticNMSCascadeROIHeads",
    "ClassAgnosticNMSROIHeads",
    "MaskBoxRCNN",
    "SwinBackbone",
    "add_swin_config",
    "blend_boxes_with_masks",
    "build_retinanet_swin_fpn_backbone",
    "build_swin_backbone",
    "build_swin_fpn_backbone",
    "build_swin_optimizer",
    "class_agnostic_nms",
    "get_swin_cfg",
    "resolve_config_path",
    "swin_param_groups",
]
