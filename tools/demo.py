#!/usr/bin/env python
"""Run a trained detector on images; a PNG with its predictions and a JSON per image.

The same as the console script `swin-demo`; options and examples: swin_scratch.visualization.cli (or --help).
"""
import sys

from swin_scratch.visualization.cli import main

if __name__ == "__main__":
    sys.exit(main())
