"""Convert a Swin checkpoint of any layout for detectron2's MODEL.WEIGHTS, or to the official layout.

    swin-convert swin_tiny_patch4_window7_224.pth swin_t_d2.pth --config swin_coco.yaml
    swin-convert hf_swin_folder/ swin_t_d2.pkl                          # detectron2 .pkl
    swin-convert timm_model.safetensors swin_t.pth --to official

Reads every layout swin_scratch.weights.layouts knows (official V1/V2, Swin-Transformer-Object-
Detection, mmdet, timm, torchvision, Hugging Face files and folders, detectron2 .pkl) and says which
one it read. --to detectron2 (default) loads the weights into the Swin that --config describes
(window sizes are resized by interpolation) and saves them under that model's key prefix (.pkl:
numpy arrays, as detectron2's model zoo; otherwise torch.save); --to official writes
microsoft/Swin-Transformer's keys ({"model": ...}). In a clone, `python tools/convert_swin_checkpoint.py`
runs this same ``main``.
"""
import argparse
import sys

from swin_scratch.detection.config import ConfigError, get_swin_cfg
from swin_scratch.detection.convert import TARGETS, convert_swin_checkpoint, convert_to_official
from swin_scratch.weights.files import CheckpointError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a Swin checkpoint: file, Hugging Face folder or http(s):// URL (cached)")
    parser.add_argument("output", help="where to write the converted file (.pth, or .pkl for detectron2)")
    parser.add_argument("--to", choices=TARGETS, default="detectron2", help="target layout (default: detectron2)")
    parser.add_argument("--config", default="swin_coco.yaml", help="target config for --to detectron2 (name or path)")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides, e.g. MODEL.SWIN.WINDOW_SIZE 12")
    args = parser.parse_intermixed_args(argv)  # options may follow the positional files
    try:
        if args.to == "official":
            result = convert_to_official(args.input, args.output)
        else:
            result = convert_swin_checkpoint(args.input, get_swin_cfg(args.config, args.opts), args.output)
            print(result["report"])
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"read layout {result['layout']}")
    print(f"wrote {args.output}: {result['num_tensors']} tensors under '{result['prefix']}'")
    return 0
