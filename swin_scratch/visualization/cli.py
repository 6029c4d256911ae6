"""Run a trained detector on images: per image, a PNG with boxes, masks, class names and scores, and a JSON.

    swin-demo --config swin_shapes.yaml --weights output/swin_shapes/model_final.pth \\
        --input datasets/shapes/val --output output/swin_shapes/demo
    swin-demo --config my.yaml --weights model.pth --input a.jpg b.jpg --output out/ \\
        --score-threshold 0.3 --opts MODEL.DEVICE cpu

Outputs are OUTPUT/<image stem>_pred.png and OUTPUT/<image stem>_pred.json (boxes XYXY in pixels,
scores, classes, class_names, masks as COCO RLE).
In a clone, `python tools/demo.py` runs this same ``main``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from swin_scratch.memory import reuse_freed_memory
from swin_scratch.precision import PrecisionError, autocast, device_type_of
from swin_scratch.visualization.predictions import (
    DemoInputError,
    build_predictor,
    check_images_readable,
    collect_image_paths,
    dataset_image_dir,
    load_inference_setup,
    predict_and_draw,
)
from swin_scratch.weights.files import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "--config-file", dest="config", required=True, metavar="NAME_OR_PATH",
                        help="config path, or a bare name such as swin_shapes.yaml among the package's configs")
    parser.add_argument("--weights", required=True, metavar="PTH", help="trained weights (e.g. model_final.pth)")
    parser.add_argument("--input", nargs="+", metavar="IMG_OR_DIR",
                        help="image files and/or directories of images (default: the images of --dataset)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N images (sorted by name)")
    parser.add_argument("--output", required=True, metavar="DIR")
    parser.add_argument("--score-threshold", "--confidence-threshold", dest="score_threshold", type=float,
                        default=0.5, help="draw and save only predictions scoring at least this (default 0.5)")
    parser.add_argument("--dataset", metavar="NAME",
                        help="registered dataset (e.g. shapes_val) whose class names to use, and whose images when "
                             "--input is not given; found where it was registered (DETECTRON2_DATASETS honoured). "
                             "Default class names: those saved in the checkpoint by training, else the config's "
                             "first DATASETS.TEST")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="inference under torch.autocast in this precision (bf16: CPUs with AVX512-BF16/AMX, GPUs)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. --opts MODEL.DEVICE cpu (MODEL.DEVICE cuda without a GPU "
                             "runs on the CPU after a warning)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reuse_freed_memory()
    try:
        if not args.input and not args.dataset:
            raise DemoInputError("give the images: --input IMG_OR_DIR..., or --dataset NAME for a dataset's images")
        setup = load_inference_setup(args.config, args.weights, args.opts, dataset=args.dataset)
        images = collect_image_paths(args.input or [dataset_image_dir(args.dataset)])[: args.limit]
        check_images_readable(images)
        predictor = build_predictor(setup.cfg)
        with autocast(args.precision, device_type_of(setup.cfg.MODEL.DEVICE)):
            written = predict_and_draw(predictor, images, args.output, setup.metadata, args.score_threshold)
    except (DemoInputError, CheckpointError, PrecisionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"predictions for {len(images)} image(s) (score >= {args.score_threshold}):")
    for path in written:
        print(f"  {path}")
    return 0

