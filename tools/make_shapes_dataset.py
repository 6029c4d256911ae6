#!/usr/bin/env python
"""Generate the built-in "shapes" demo dataset (COCO format, instance masks), or keep it if it is there.

    python tools/make_shapes_dataset.py                          # -> $DETECTRON2_DATASETS/shapes or ./datasets/shapes
    python tools/make_shapes_dataset.py --root /tmp/shapes --num-train 50 --num-val 10
    python tools/make_shapes_dataset.py --preview docs/images/shapes_samples.png

The same --seed, counts and --image-size give byte-identical files. It is registered with
detectron2 as shapes_train / shapes_val by swin_scratch.data.register_shapes_datasets.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from swin_scratch.data.shapes import ShapesConfig, ShapesDatasetError, generate_shapes_dataset


def build_parser() -> argparse.ArgumentParser:
    defaults = ShapesConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", metavar="DIR",
                        help="dataset folder (default: $DETECTRON2_DATASETS/shapes, or ./datasets/shapes)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--num-train", type=int, default=defaults.num_train, metavar="N")
    parser.add_argument("--num-val", type=int, default=defaults.num_val, metavar="N")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, metavar="PIXELS",
                        help="side of the square images")
    parser.add_argument("--force", action="store_true", help="regenerate even if an identical dataset exists")
    parser.add_argument("--preview", metavar="PNG", help="also write a 2x2 grid of train images with their masks")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = ShapesConfig(seed=args.seed, num_train=args.num_train, num_val=args.num_val,
                              image_size=args.image_size)
        result = generate_shapes_dataset(args.root, config, force=args.force, progress=not args.quiet)
    except (ValueError, ShapesDatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    state = "generated" if result.generated else "already complete, kept (use --force to regenerate)"
    print(f"shapes dataset {state}: {result.root}")
    for split in ("train", "val"):
        print(f"  {split}: {result.num_images[split]} images, {result.num_annotations[split]} objects -> "
              f"{result.annotation_file(split)}")
    if args.preview:
        from swin_scratch.visualization.preview import draw_shapes_preview

        print(f"preview: {draw_shapes_preview(result.root, args.preview)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
