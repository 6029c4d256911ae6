"""``python -m swin_scratch.env``: which torch / detectron2 this environment has, how detectron2 got
here, which compatibility fixes it carries, and whether its compiled ops really run."""
from __future__ import annotations

import importlib
import sys
import warnings

from swin_scratch.compat.install_detectron2 import KEPT, PB1_FALLBACK, SPEC, read_record

INSTALL_MODES = {
    KEPT: "detectron2 already importable before set-up, kept as is",
    SPEC: "installed from DETECTRON2_SPEC (+ the fixes it still needed)",
    PB1_FALLBACK: "PyPI pb1-detectron2==0.6 sources + swin_scratch/compat/detectron2_fixes.py, no compiled extension",
}


def has_compiled_extension() -> bool:
    """Whether detectron2's compiled C++ ops (``detectron2._C``) import: the ``spec`` mode with upstream's wheel
    yes, ``pb1-fallback`` no."""
    try:
        importlib.import_module("detectron2._C")
        return True
    except ImportError:
        return False


def _nms_rotated_on_cpu() -> None:
    import torch
    from detectron2.layers import nms_rotated

    boxes = torch.tensor([[10.0, 10.0, 5.0, 5.0, 0.0], [10.0, 10.0, 5.0, 5.0, 0.0]])  # (N, 5) cx, cy, w, h, angle
    keep = nms_rotated(boxes, torch.tensor([0.9, 0.8]), 0.5)
    if keep.tolist() != [0]:
        raise RuntimeError(f"nms_rotated kept {keep.tolist()} of two identical boxes, expected [0]")


def _roi_align_rotated_on_cpu() -> None:
    import torch
    from detectron2.layers import ROIAlignRotated

    features = torch.ones(1, 1, 8, 8)  # (N, C, H, W)
    rois = torch.tensor([[0.0, 4.0, 4.0, 4.0, 4.0, 30.0]])  # (R, 6) batch index, cx, cy, w, h, angle
    pooled = ROIAlignRotated(output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2)(features, rois)
    if not torch.allclose(pooled, torch.ones(1, 1, 2, 2)):
        raise RuntimeError(f"roi_align_rotated of a constant map gave {pooled.flatten().tolist()}, expected ones")


COMPILED_OP_CHECKS = {"nms_rotated": _nms_rotated_on_cpu, "roi_align_rotated": _roi_align_rotated_on_cpu}


def compiled_ops_report() -> dict[str, str]:
    """One CPU call of each compiled-only op: ``"works"`` or the first line of its error."""
    report = {}
    for name, check in COMPILED_OP_CHECKS.items():
        try:
            check()
            report[name] = "works"
        except Exception as err:  # a missing extension raises RuntimeError; report any failure, never crash
            first_line = (str(err).splitlines() or [""])[0]
            report[name] = f"fails: {type(err).__name__}: {first_line[:100]}"
    return report


def detectron2_report() -> dict:
    """What detectron2 is installed, from where, with which fixes, and whether its compiled extension exists."""
    try:
        detectron2 = importlib.import_module("detectron2")
    except ImportError as err:
        return {"installed": False, "error": str(err)}
    recorded = read_record() or {"mode": KEPT, "detail": "no install record; assumed pre-installed"}
    return {
        "installed": True,
        "version": detectron2.__version__,
        "location": detectron2.__path__[0],
        "compiled_extension": has_compiled_extension(),
        "compiled_ops": compiled_ops_report(),
        "mode": recorded.get("mode"),
        "how": INSTALL_MODES.get(recorded.get("mode"), "unknown"),
        "detail": recorded.get("detail"),
        "fixes_applied": recorded.get("fixes_applied", []),
    }


def main() -> int:
    import torch

    # importing detectron2 scripts a few functions; torch 2.14 warns about each (noise in a report)
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

    print(f"python       {sys.version.split()[0]}")
    print(f"torch        {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
    report = detectron2_report()
    if not report["installed"]:
        print(f"detectron2   NOT INSTALLED ({report['error']}); run `make setup`")
        return 1
    print(f"detectron2   {report['version']} at {report['location']}")
    print(f"  install mode {report['mode']}: {report['how']}")
    print(f"  detail: {report['detail']}")
    print(f"  compiled extension (detectron2._C): {'yes' if report['compiled_extension'] else 'no'}")
    for name, outcome in report["compiled_ops"].items():
        print(f"  compiled op {name} on CPU: {outcome}")
    fixes = report["fixes_applied"]
    print(f"  compat fixes applied ({len(fixes)}): {', '.join(fixes) if fixes else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
