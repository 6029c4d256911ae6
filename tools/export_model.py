#!/usr/bin/env python
"""Export a Swin backbone or a whole Swin detector to TorchScript or ONNX, then verify the file.

    python tools/export_model.py --config swin_shapes.yaml --weights output/swin_shapes/model_final.pth \\
        --format onnx --output exported/ --part backbone
    python tools/export_model.py --config swin_shapes.yaml --weights ... --format torchscript \\
        --output exported/ --part detector --image datasets/shapes/val/000000.png

Input sizes: the backbone export accepts any H x W that are multiples of 32 and, like its trace size,
at least 32 * (window + 1) (256 for window 7): masks, padding and the cyclic shift are computed from
shapes in the traced graph. Smaller sizes need an export traced at a small size. It is verified at the
trace size and at --check-size. A detector export is traced at one image size and accepts only that size: running it
on another size is refused with an error rather than returning wrong boxes.

Every export is run right after it is written (TorchScript via torch.jit.load, ONNX via onnxruntime
on CPU) on the same input as eager PyTorch; the differences are printed and the tool exits 1 when
they exceed the tolerance (backbone 1e-4 relative; detector outputs 1e-3).
"""
import sys

from swin_scratch.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
