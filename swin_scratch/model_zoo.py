"""The shipped configs as a model zoo: one table of what each config is, and by-name access to it.

    from swin_scratch import model_zoo

    model_zoo.list_configs()                                     # ["cascade_mask_rcnn_swin_b_fpn_3x.yaml", ...]
    model_zoo.ZOO["mask_rcnn_swin_t_fpn_3x.yaml"].box_ap           # 46.0, the official COCO result of its recipe
    cfg = model_zoo.get_config("mask_rcnn_swin_t_fpn_3x.yaml")     # detectron2 CfgNode, Swin keys added
    lazy = model_zoo.get_config("mask_rcnn_swin_t_fpn_3x.py")      # LazyConfig (omegaconf DictConfig)
    model = model_zoo.get("mask_rcnn_swin_t_fpn_3x.yaml", trained=True)  # official COCO weights, eval mode

Like torchvision's per-weights metadata, :data:`ZOO` is data: the docs' table
(docs/detection.md, :func:`markdown_table`) and the tests read it instead of repeating numbers.
Names are the files in ``swin_scratch/configs/`` (installed with the package); an unknown name is
one :class:`UnknownConfigError` that lists the names there are.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from detectron2.config import CfgNode, LazyConfig, instantiate
from detectron2.modeling import build_model
from torch import nn

import swin_scratch.detection.backbone  # noqa: F401  (registers the Swin backbones with detectron2)
from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.config import CONFIGS_DIR, ConfigError, get_swin_cfg

# Where the AP numbers come from (COCO val2017): the official detection repository's README tables
# (github.com/SwinTransformer/Swin-Transformer-Object-Detection), detectron2's projects/ViTDet README
OFFICIAL = "Swin-Transformer-Object-Detection"
VITDET = "ViTDet"
# The official COCO-trained models (mmdet layout; swin_scratch/weights/mmdet.py translates the Mask R-CNN heads)
RELEASES = "https://github.com/SwinTransformer/storage/releases/download/"


@dataclass(frozen=True)
class ZooEntry:
    """One shipped config: what it trains and what its recipe reached where it was published.

    ``box_ap`` / ``mask_ap`` are the published COCO val2017 results of the recipe the config follows
    (``ap_source``), not numbers measured with this project. ``checkpoint`` is the official
    COCO-trained model of that row when this project's loader reads it whole (``trained=True``).
    """

    name: str
    task: str  # "instance segmentation", "detection"
    architecture: str
    backbone: str  # Swin-T / Swin-S / Swin-B, or the demo's small Swin
    pretrain: str  # the ImageNet weights MODEL.WEIGHTS / train.init_checkpoint names
    schedule: str
    box_ap: float | None = None
    mask_ap: float | None = None
    ap_source: str | None = None
    checkpoint: str | None = None
    notes: str = ""

    @property
    def is_lazy_config(self) -> bool:
        return self.name.endswith(".py")


def _mask_rcnn(name: str, backbone: str, schedule: str, box: float, mask: float, release: str, notes: str = ""):
    return ZooEntry(name, "instance segmentation", "Mask R-CNN", backbone, "ImageNet-1K", schedule, box, mask,
                    OFFICIAL, RELEASES + release, notes)


def _cascade(name: str, backbone: str, box: float, mask: float):
    return ZooEntry(name, "instance segmentation", "Cascade Mask R-CNN", backbone, "ImageNet-1K", "3x", box, mask,
                    OFFICIAL, notes="the official checkpoint's cascade heads are not translated")


SWIN_T_3X = "v1.0.2/mask_rcnn_swin_tiny_patch4_window7.pth"
_ENTRIES = (
    _mask_rcnn("mask_rcnn_swin_t_fpn_1x.yaml", "Swin-T", "1x", 43.7, 39.8,
               "v1.0.3/mask_rcnn_swin_tiny_patch4_window7_1x.pth"),
    _mask_rcnn("mask_rcnn_swin_t_fpn_3x.yaml", "Swin-T", "3x", 46.0, 41.6, SWIN_T_3X),
    _mask_rcnn("mask_rcnn_swin_t_fpn_3x.py", "Swin-T", "3x", 46.0, 41.6, SWIN_T_3X,
               "LazyConfig of mask_rcnn_swin_t_fpn_3x.yaml (same model)"),
    _mask_rcnn("swin_coco.yaml", "Swin-T", "3x", 46.0, 41.6, SWIN_T_3X, "= mask_rcnn_swin_t_fpn_3x.yaml"),
    _mask_rcnn("mask_rcnn_swin_s_fpn_3x.yaml", "Swin-S", "3x", 48.5, 43.3,
               "v1.0.2/mask_rcnn_swin_small_patch4_window7.pth"),
    _cascade("cascade_mask_rcnn_swin_t_fpn_3x.yaml", "Swin-T", 50.4, 43.7),
    _cascade("cascade_mask_rcnn_swin_s_fpn_3x.yaml", "Swin-S", 51.9, 45.0),
    _cascade("cascade_mask_rcnn_swin_b_fpn_3x.yaml", "Swin-B", 51.9, 45.0),
    ZooEntry("cascade_mask_rcnn_swin_b_in21k_50ep.py", "instance segmentation", "Cascade Mask R-CNN", "Swin-B",
             "ImageNet-22K", "50 ep, LSJ 1024", 53.9, 46.2, VITDET,
             notes="ViTDet's recipe (LayerNorm heads, batch 64)"),
    ZooEntry("mask_rcnn_swin_v2_t_fpn_3x.yaml", "instance segmentation", "Mask R-CNN", "Swin V2-T", "ImageNet-1K",
             "3x", notes="no official Swin V2 COCO result; the V1 3x recipe"),
    ZooEntry("cascade_mask_rcnn_swin_v2_s_fpn_3x.yaml", "instance segmentation", "Cascade Mask R-CNN", "Swin V2-S",
             "ImageNet-1K", "3x", notes="no official Swin V2 COCO result; the V1 Cascade recipe"),
    ZooEntry("cascade_mask_rcnn_swin_v2_b_fpn_3x.yaml", "instance segmentation", "Cascade Mask R-CNN", "Swin V2-B",
             "ImageNet-1K", "3x", notes="no official Swin V2 COCO result; the V1 Cascade recipe"),
    ZooEntry("faster_rcnn_swin_t_fpn_3x.yaml", "detection", "Faster R-CNN", "Swin-T", "ImageNet-1K", "3x",
             notes="no official result"),
    ZooEntry("retinanet_swin_t_fpn_3x.yaml", "detection", "RetinaNet", "Swin-T", "ImageNet-1K", "3x",
             notes="no official result"),
    ZooEntry("swin_shapes.yaml", "instance segmentation", "Cascade Mask R-CNN", "Swin (embed 32, depths 1-1-2-1)",
             "none", "2000 iters", notes="the CPU demo on the built-in shapes data"),
    ZooEntry("swin_v2_shapes.yaml", "instance segmentation", "Cascade Mask R-CNN",
             "Swin V2 (embed 32, depths 1-1-2-1)", "none", "2000 iters",
             notes="the CPU demo with a Swin V2 backbone (make demo DEMO_CONFIG=swin_v2_shapes.yaml)"),
)
ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in _ENTRIES}


class UnknownConfigError(ConfigError):
    """A name that is not in the zoo; the message lists the names there are."""


def list_configs(task: str | None = None) -> list[str]:
    """The zoo's config names (optionally of one ``task``), sorted."""
    return sorted(name for name, entry in ZOO.items() if task is None or entry.task == task)


def get_entry(name: str) -> ZooEntry:
    """The table row of ``name``; :class:`UnknownConfigError` for a name not in the zoo."""
    try:
        return ZOO[name]
    except KeyError:
        names = ", ".join(list_configs())
        raise UnknownConfigError(f"no config {name!r} in the model zoo; the zoo has: {names}") from None


def get_config_file(name: str) -> Path:
    """The installed file of config ``name`` (inside the package: works without a clone)."""
    get_entry(name)
    return CONFIGS_DIR / name


def get_config(name: str, trained: bool = False) -> CfgNode | Any:
    """The config ``name``: for ``.yaml`` a detectron2 ``CfgNode`` with :func:`add_swin_config`'s keys, for
    ``.py`` a LazyConfig (an omegaconf ``DictConfig``, as ``detectron2.config.LazyConfig.load`` returns it).

    ``trained=True`` points the weights (``MODEL.WEIGHTS``, or ``train.init_checkpoint``) at the official
    COCO-trained model instead of the ImageNet initialization; configs without one raise ``ConfigError``.
    """
    entry = get_entry(name)
    path = get_config_file(name)
    cfg = LazyConfig.load(str(path)) if entry.is_lazy_config else get_swin_cfg(str(path))
    if trained:
        if entry.checkpoint is None:
            raise ConfigError(f"{name} has no official COCO-trained weights this project can load "
                              f"({entry.notes or 'none published'}); those that do: "
                              f"{', '.join(n for n in list_configs() if ZOO[n].checkpoint)}")
        if entry.is_lazy_config:
            cfg.train.init_checkpoint = entry.checkpoint
        else:
            cfg.MODEL.WEIGHTS = entry.checkpoint
    return cfg


def get(name: str, trained: bool = False, device: str | None = None) -> nn.Module:
    """The model of config ``name`` on ``device`` (default: the GPU if there is one, else the CPU).

    ``trained=False``: freshly initialized, nothing downloaded, in training mode (as ``build_model``
    returns it). ``trained=True``: the official COCO weights (see :func:`get_config`) loaded through
    the project's checkpointer (downloaded once into detectron2's cache), in eval mode.
    """
    cfg = get_config(name, trained=trained)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if get_entry(name).is_lazy_config:
        model = instantiate(cfg.model).to(device)
        weights = cfg.train.init_checkpoint
    else:
        cfg.MODEL.DEVICE = device
        model = build_model(cfg)
        weights = cfg.MODEL.WEIGHTS
    if trained:
        SwinCheckpointer(model).resume_or_load(weights, resume=False)
        model.eval()
    return model


def markdown_table() -> str:
    """The zoo as the Markdown table in docs/detection.md (a test keeps the two in step)."""

    def ap(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    lines = ["| config | model | backbone | pre-training | schedule | box AP | mask AP | AP from | trained | notes |",
             "|---|---|---|---|---|---:|---:|---|---|---|"]
    for name in list_configs():
        e = ZOO[name]
        lines.append(f"| `{name}` | {e.architecture} | {e.backbone} | {e.pretrain} | {e.schedule} | {ap(e.box_ap)} | "
                     f"{ap(e.mask_ap)} | {e.ap_source or ''} | {'yes' if e.checkpoint else ''} | {e.notes} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m swin_scratch.model_zoo``: print the table (or one config's file path)."""
    parser = argparse.ArgumentParser(description="The configs installed with swin_scratch, with their official AP.")
    parser.add_argument("name", nargs="?", help="print this config's file path instead")
    args = parser.parse_args(argv)
    if args.name is None:
        print(markdown_table())
        return 0
    try:
        print(get_config_file(args.name))
    except UnknownConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
