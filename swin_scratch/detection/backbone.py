"""Swin as a detectron2 ``Backbone``, alone and under FPN (two- and one-stage detectors)."""
from __future__ import annotations

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool, LastLevelP6P7
from torch import Tensor, nn

from swin_scratch.detection.config import ConfigError
from swin_scratch.models.swin import SwinTransformer, stage_name
from swin_scratch.models.swin_v2 import SwinTransformerV2

STAGE_NAMES = tuple(stage_name(index) for index in range(4))  # stage2..stage5: strides 4, 8, 16, 32


class SwinBackbone(Backbone):
    """Wraps :class:`SwinTransformer` in detection mode; outputs ``{"stage2": (B, C, H/4, W/4), ...}``.

    The Swin module is kept as ``self.swin`` so the state-dict keys are the official ones
    under one prefix (``backbone.bottom_up.swin.layers.0...`` inside an FPN).
    """

    def __init__(self, swin: SwinTransformer, out_features: list[str]):
        super().__init__()
        unknown = [name for name in out_features if name not in STAGE_NAMES]
        if unknown:
            raise ValueError(f"MODEL.SWIN.OUT_FEATURES has unknown names {unknown}; choose from {list(STAGE_NAMES)}")
        self.swin = swin
        self._out_features = list(out_features)
        self._stage_indices = [STAGE_NAMES.index(name) for name in out_features]
        self._out_feature_channels = {name: swin.num_features[STAGE_NAMES.index(name)] for name in out_features}
        self._out_feature_strides = {name: swin.patch_size * 2 ** STAGE_NAMES.index(name) for name in out_features}

    @property
    def size_divisibility(self) -> int:
        # Padding batches to a multiple of the coarsest stride keeps FPN's top-down sums aligned.
        return 32

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.swin(x)  # list of (B, C_i, H_i, W_i) in the model's out_indices order
        return dict(zip(self._out_features, features))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


def swin_from_cfg(cfg, in_channels: int) -> SwinBackbone:
    """Build the Swin detection backbone described by ``cfg.MODEL.SWIN``."""
    swin_cfg = cfg.MODEL.SWIN
    out_features = list(swin_cfg.OUT_FEATURES)
    if swin_cfg.VERSION not in (1, 2):
        raise ConfigError(f"MODEL.SWIN.VERSION must be 1 (Swin) or 2 (Swin V2), got {swin_cfg.VERSION!r}")
    version_options = (
        {"pretrained_window_sizes": tuple(swin_cfg.PRETRAINED_WINDOW_SIZES)} if swin_cfg.VERSION == 2 else {}
    )
    swin = (SwinTransformerV2 if swin_cfg.VERSION == 2 else SwinTransformer)(
        img_size=swin_cfg.PRETRAIN_IMG_SIZE,
        patch_size=swin_cfg.PATCH_SIZE,
        in_chans=in_channels,
        num_classes=0,
        embed_dim=swin_cfg.EMBED_DIM,
        depths=tuple(swin_cfg.DEPTHS),
        num_heads=tuple(swin_cfg.NUM_HEADS),
        window_size=swin_cfg.WINDOW_SIZE,
        mlp_ratio=swin_cfg.MLP_RATIO,
        qkv_bias=swin_cfg.QKV_BIAS,
        drop_path_rate=swin_cfg.DROP_PATH_RATE,
        ape=swin_cfg.APE,
        patch_norm=swin_cfg.PATCH_NORM,
        out_indices=tuple(sorted(STAGE_NAMES.index(name) for name in out_features)),
        frozen_stages=swin_cfg.FROZEN_STAGES,
        use_checkpoint=swin_cfg.USE_CHECKPOINT,
        **version_options,
    )
    if swin_cfg.COMPILE:
        # In place (nn.Module.compile), so state-dict keys stay the official ones. dynamic=None
        # (PyTorch's automatic dynamic): static graphs first, one dynamic graph once sizes change.
        # Forcing dynamic=True from the start made the first training step trace for > 10 min
        # (symbolic shapes through autograd, torch 2.14, 2 cores).
        swin.compile(fullgraph=True, backend=swin_cfg.COMPILE_BACKEND)
    return SwinBackbone(swin, sorted(out_features, key=STAGE_NAMES.index))


@BACKBONE_REGISTRY.register()
def build_swin_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """Swin stages alone (e.g. for a custom neck)."""
    return swin_from_cfg(cfg, input_shape.channels)


@BACKBONE_REGISTRY.register()
def build_swin_fpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """FPN over Swin with a max-pooled P6, for Faster / Mask / Cascade R-CNN."""
    bottom_up = swin_from_cfg(cfg, input_shape.channels)
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_retinanet_swin_fpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """FPN over Swin with P6/P7 computed from the last Swin stage, for RetinaNet."""
    bottom_up = swin_from_cfg(cfg, input_shape.channels)
    last_stage = cfg.MODEL.FPN.IN_FEATURES[-1]
    in_channels_p6p7 = bottom_up.output_shape()[last_stage].channels
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(in_channels_p6p7, cfg.MODEL.FPN.OUT_CHANNELS, in_feature=last_stage),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


def swin_module(model: nn.Module) -> SwinTransformer | None:
    """The SwinTransformer (V1 or V2: V2 is a subclass) inside a detectron2 model, if any."""
    for module in model.modules():
        if isinstance(module, SwinTransformer):
            return module
    return None


def swin_key_prefix(model: nn.Module) -> str:
    """Where the Swin weights live in ``model``'s state dict, e.g. ``backbone.bottom_up.swin.`` in a
    detector, ``bottom_up.swin.`` in a bare FPN backbone; the one place that finds it."""
    swin = swin_module(model)
    for name, module in model.named_modules():
        if module is swin:
            return f"{name}." if name else ""
    raise ValueError("the model contains no SwinTransformer")
