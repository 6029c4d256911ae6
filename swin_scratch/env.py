"""``python -m swin_scratch.env``: which torch / detectron2 this environment has, and how detectron2 got here."""
from __future__ import annotations

import importlib
import json
import sys

from swin_scratch.compat.install_detectron2 import RECORD_PATH

CASES = {
    "a": "kept: detectron2 already importable before set-up",
    "b": "installed from DETECTRON2_SPEC",
    "c": "fallback: PyPI pb1-detectron2==0.6 sources + swin_scratch/compat/detectron2_fixes.py, no compiled extension",
}


def detectron2_report() -> dict:
    """What detectron2 is installed, from where, and whether its compiled extension exists."""
    try:
        detectron2 = importlib.import_module("detectron2")
    except ImportError as err:
        return {"installed": False, "error": str(err)}
    try:
        importlib.import_module("detectron2._C")
        compiled = True
    except ImportError:
        compiled = False
    try:
        recorded = json.loads(RECORD_PATH.read_text())
    except (OSError, ValueError):
        recorded = {"case": "a", "detail": "no install record; assumed pre-installed"}
    return {
        "installed": True,
        "version": detectron2.__version__,
        "location": detectron2.__path__[0],
        "compiled_extension": compiled,
        "case": recorded.get("case"),
        "how": CASES.get(recorded.get("case"), "unknown"),
        "detail": recorded.get("detail"),
    }


def main() -> int:
    import torch

    print(f"python       {sys.version.split()[0]}")
    print(f"torch        {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
    report = detectron2_report()
    if not report["installed"]:
        print(f"detectron2   NOT INSTALLED ({report['error']}); run `make setup`")
        return 1
    print(f"detectron2   {report['version']} at {report['location']}")
    print(f"  case {report['case']}: {report['how']}")
    print(f"  detail: {report['detail']}")
    print(f"  compiled extension (detectron2._C): {'yes' if report['compiled_extension'] else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
