"""Convert an official Swin checkpoint for detectron2's MODEL.WEIGHTS.

    swin-convert swin_tiny_patch4_window7_224.pth swin_t_d2.pth --config swin_coco.yaml

Accepts ImageNet checkpoints from microsoft/Swin-Transformer and COCO checkpoints from
Swin-Transformer-Object-Detection (mmdet layout: only the backbone is kept). The weights are
loaded into the Swin that --config describes (window sizes are resized by interpolation),
then saved under the key prefix of that detectron2 model.
In a clone, `python tools/convert_swin_checkpoint.py` runs this same ``main``.
"""
import argparse
import sys

from swin_scratch.detection.config import ConfigError, get_swin_cfg
from swin_scratch.detection.convert import convert_swin_checkpoint
from swin_scratch.weights.files import CheckpointError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="official .pth checkpoint: a path or an http(s):// URL (downloaded once, cached)")
    parser.add_argument("output", help="where to write the detectron2-loadable .pth")
    parser.add_argument("--config", default="swin_coco.yaml",
                        help="target config (a path, or a name among the package's configs)")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE",
                        help="config overrides, e.g. MODEL.SWIN.WINDOW_SIZE 12")
    args = parser.parse_intermixed_args(argv)  # options may follow the positional files
    try:
        cfg = get_swin_cfg(args.config, args.opts)
        result = convert_swin_checkpoint(args.input, cfg, args.output)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result["report"])
    print(f"wrote {args.output}: {result['num_tensors']} tensors under '{result['prefix']}'")
    return 0

