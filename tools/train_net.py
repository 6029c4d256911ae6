#!/usr/bin/env python
"""Train or evaluate a Swin detector with detectron2.

    python tools/train_net.py --config swin_coco.yaml --num-gpus 8
    python tools/train_net.py --config swin_shapes.yaml            # the CPU demo
    python tools/train_net.py --config swin_coco.yaml --eval-only MODEL.WEIGHTS path/to/model.pth
"""
import sys

from swin_scratch.engine.train import main

if __name__ == "__main__":
    sys.exit(main())
