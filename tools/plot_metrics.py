#!/usr/bin/env python
"""Plot a detectron2 training run: losses, learning rate and evaluation APs from OUTPUT_DIR/metrics.json.

    python tools/plot_metrics.py output/swin_shapes                # -> output/swin_shapes/plots/*.png
    python tools/plot_metrics.py output/swin_shapes/metrics.json --output pictures/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from swin_scratch.visualization.metrics import MetricsFileError, plot_metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="OUTPUT_DIR", help="training output folder holding metrics.json (or the file)")
    parser.add_argument("--output", metavar="DIR", help="where to write the PNGs (default: OUTPUT_DIR/plots)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = Path(args.run)
    output = Path(args.output) if args.output else (run if run.is_dir() else run.parent) / "plots"
    try:
        written = plot_metrics(run, output)
    except MetricsFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("plots:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
