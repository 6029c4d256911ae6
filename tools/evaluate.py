#!/usr/bin/env python
"""Evaluate saved COCO-format results without re-running the model.

The same as the console script `swin-evaluate`; options and examples: swin_scratch.engine.evaluate (or --help).
"""
import sys

from swin_scratch.engine.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
