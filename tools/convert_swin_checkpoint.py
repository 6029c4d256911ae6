#!/usr/bin/env python
"""Convert a Swin checkpoint of any layout for detectron2's MODEL.WEIGHTS, or to the official layout.

The same as the console script `swin-convert`; options and examples: swin_scratch.detection.convert_cli (or --help).
"""
import sys

from swin_scratch.detection.convert_cli import main

if __name__ == "__main__":
    sys.exit(main())
