"""``tools/export_model.py``: argument parsing and printing around :mod:`.backbone` / :mod:`.detector`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from swin_scratch.precision import autocast

# Backbone verification: max |eager - export| / max |eager|. bf16 keeps 8 bits of mantissa (~4e-3 per op).
VERIFY_TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export a Swin backbone or detector (TorchScript/ONNX) and verify it against eager PyTorch. "
        "Backbone exports accept any H, W that are multiples of 32; detector exports accept only the traced image "
        "size. "
        "Exports are traced and verified on the CPU, whatever MODEL.DEVICE says: the files then run anywhere and are "
        "checked with onnxruntime's CPU provider."
    )
    parser.add_argument("--config", required=True,
                        help="config path, or a bare name among the package's configs (swin_scratch/configs/)")
    parser.add_argument("--weights", default="", help="checkpoint for MODEL.WEIGHTS ('' = random init)")
    parser.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--part", choices=("backbone", "detector"), default="backbone")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"),
                        help="backbone trace size (multiples of 32, at least 32 * (window + 1))")
    parser.add_argument("--check-size", type=int, nargs=2, default=(320, 448), metavar=("H", "W"),
                        help="a second size the backbone export is verified at")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="backbone: verify with eager PyTorch (and TorchScript) under bf16 autocast against the "
                        "export, with a bf16 tolerance")
    parser.add_argument("--image", help="detector: image file to trace and verify on (default: a random image)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


def _load_image(path: str | None, cfg) -> torch.Tensor:
    """(3, H, W) uint8 in the model's input format, resized like detectron2's test-time transform."""
    from detectron2.data import transforms as T
    from detectron2.data.detection_utils import read_image

    if path is None:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST, 3), dtype=np.uint8)
    else:
        try:
            image = read_image(path, format=cfg.INPUT.FORMAT)
        except Exception as err:
            raise ValueError(f"cannot read image {path}: {err}") from None
    resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    image = resize.get_transform(image).apply_image(image)
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))


def main(argv=None) -> int:
    from swin_scratch.coco.errors import DatasetFormatError, DatasetNotFoundError
    from swin_scratch.detection.backbone import swin_module
    from swin_scratch.detection.checkpointer import build_model_for_inference
    from swin_scratch.detection.config import ConfigError
    from swin_scratch.detection.tool_config import tool_config
    from swin_scratch.export.backbone import ExportError, export_backbone, verify_backbone
    from swin_scratch.export.detector import export_detector, verify_detector
    from swin_scratch.weights.files import CheckpointError

    args = _parser().parse_args(argv)
    suffix = ".onnx" if args.format == "onnx" else ".ts"
    try:
        cfg = tool_config(args.config, args.opts, weights=args.weights)
        cfg.MODEL.DEVICE = "cpu"  # exports are traced and verified on the CPU (see _parser's description)
        model = build_model_for_inference(cfg)
        if args.part == "backbone":
            swin = swin_module(model).eval()
            trace_input = torch.rand(1, 3, *args.size)
            path = export_backbone(swin, trace_input, Path(args.output) / f"swin_backbone{suffix}", args.format)
            print(f"wrote {path}")
            for images in (trace_input, torch.rand(1, 3, *args.check_size)):
                with autocast(args.precision, "cpu"):
                    print(verify_backbone(swin, path, images, tolerance=VERIFY_TOLERANCE[args.precision]))
        else:
            if args.precision != "fp32":
                raise ValueError(f"--precision {args.precision} verifies backbone exports only; use --part backbone")
            image = _load_image(args.image, cfg)
            path = export_detector(model, image, Path(args.output) / f"detector{suffix}", args.format)
            print(f"wrote {path}")
            print(verify_detector(model, path, image))
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, DatasetFormatError, DatasetNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
