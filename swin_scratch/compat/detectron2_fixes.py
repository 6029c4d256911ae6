"""Every change this project makes to detectron2 v0.6's Python sources, in one table.

Used only by the fallback install (case c in :mod:`swin_scratch.compat.install_detectron2`):
PyPI's ``pb1-detectron2==0.6`` carries detectron2 v0.6 without its C++/CUDA sources, and the
2021 code predates NumPy 2, Pillow 10 and setuptools without ``pkg_resources``. Each
:class:`SourceFix` names the file, the reason, and the literal text it replaces, so the list
doubles as documentation (README "detectron2 compatibility fixes") and is checked by tests.

This module is plain Python with no third-party imports: the installer runs it before
torch or detectron2 is importable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MISSING_EXTENSION_MODULE = '''"""Stand-in for detectron2._C when the compiled extension is not built (added by swin_scratch).

Importing modules that reference the extension works; calling one of its ops raises a clear error.
"""


class MissingCompiledExtension:
    def __getattr__(self, name):
        raise RuntimeError(
            f"detectron2._C.{name} needs detectron2's compiled C++/CUDA extension, which this "
            "detectron2 was installed without (swin_scratch's fallback install from pb1-detectron2). "
            "Rotated boxes, deformable convolution and the fast COCO evaluator need it. Reinstall "
            "with DETECTRON2_SPEC set to the official source, e.g. "
            "DETECTRON2_SPEC='git+https://github.com/facebookresearch/detectron2.git' make setup"
        )

    def __bool__(self):
        return False


_C = MissingCompiledExtension()
'''

LAZY_C_IMPORT = (
    "try:\n"
    "    from detectron2 import _C\n"
    "except ImportError:  # swin_scratch: compiled extension absent; ops raise when called\n"
    "    from detectron2._missing_extension import _C\n"
)

FAST_EVAL_FALLBACK = (
    "\n\nif not _C:  # swin_scratch: no compiled extension -> pycocotools' COCOeval, same numbers\n"
    "    COCOeval_opt = COCOeval  # noqa: F811\n"
)

_NUMPY_ALIAS = re.compile(r"\bnp\.(bool|int|float|str|object)\b(?![_\d])")


@dataclass(frozen=True)
class SourceFix:
    path: str  # relative to the directory that holds the ``detectron2`` package
    reason: str
    apply: Callable[[str], str]


def _replace(old: str, new: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        if old not in text:
            raise ValueError(f"expected text not found: {old!r}")
        return text.replace(old, new)

    return apply


def _replace_numpy_aliases(text: str) -> str:
    new = _NUMPY_ALIAS.sub(lambda m: m.group(1), text)
    if new == text:
        raise ValueError("no deprecated numpy alias found")
    return new


def _append(extra: str, after: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: after(text) + extra


_C_IMPORT = "from detectron2 import _C\n"

FIXES: tuple[SourceFix, ...] = (
    *(
        SourceFix(
            f"detectron2/layers/{name}.py",
            "imports the compiled extension detectron2._C at module level; made lazy so "
            "`import detectron2.layers` works and only calling the op raises a clear error",
            _replace(_C_IMPORT, LAZY_C_IMPORT),
        )
        for name in ("deform_conv", "rotated_boxes", "roi_align_rotated")
    ),
    SourceFix(
        "detectron2/evaluation/fast_eval_api.py",
        "imports detectron2._C at module level; without it COCOeval_opt falls back to "
        "pycocotools' COCOeval (identical numbers, slower)",
        _append(FAST_EVAL_FALLBACK, _replace(_C_IMPORT, LAZY_C_IMPORT)),
    ),
    SourceFix(
        "detectron2/layers/nms.py",
        "nms_rotated calls torch.ops.detectron2.nms_rotated, registered only by the compiled "
        "extension; without it the call raises the clear missing-extension error",
        _replace(
            "    return torch.ops.detectron2.nms_rotated(boxes, scores, iou_threshold)\n",
            "    if not hasattr(torch.ops.detectron2, \"nms_rotated\"):  # swin_scratch: no compiled extension\n"
            "        from detectron2._missing_extension import _C\n\n"
            "        return _C.nms_rotated(boxes, scores, iou_threshold)\n"
            "    return torch.ops.detectron2.nms_rotated(boxes, scores, iou_threshold)\n",
        ),
    ),
    SourceFix(
        "detectron2/export/__init__.py",
        "imports the Caffe2 export API, and Caffe2 is no longer part of PyTorch; the import is made "
        "optional so TracingAdapter and the TorchScript helpers (torch.jit / ONNX export) work",
        _replace(
            "from .api import *\n",
            "try:\n    from .api import *\nexcept ImportError:  # swin_scratch: caffe2 left PyTorch; Caffe2 export unavailable\n    pass\n",
        ),
    ),
    SourceFix(
        "detectron2/data/transforms/transform.py",
        "PIL.Image.LINEAR was removed in Pillow 10; it was an alias of Image.BILINEAR",
        _replace("interp=Image.LINEAR", "interp=Image.BILINEAR"),
    ),
    SourceFix(
        "detectron2/model_zoo/model_zoo.py",
        "imports pkg_resources, which current setuptools no longer ships; the configs are "
        "package files, found next to the module instead",
        lambda text: _replace("import pkg_resources\n", "")(
            _replace(
                'cfg_file = pkg_resources.resource_filename(\n        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )',
                'cfg_file = os.path.join(os.path.dirname(__file__), "configs", config_path)',
            )(text)
        ),
    ),
    *(
        SourceFix(
            path,
            "np.bool/np.int/np.float/np.str aliases were removed in NumPy 1.24; use the builtins",
            _replace_numpy_aliases,
        )
        for path in (
            "detectron2/structures/masks.py",
            "detectron2/data/build.py",
            "detectron2/evaluation/pascal_voc_evaluation.py",
            "detectron2/evaluation/sem_seg_evaluation.py",
            "detectron2/utils/visualizer.py",
            "detectron2/utils/video_visualizer.py",
            "detectron2/data/datasets/pascal_voc.py",
        )
    ),
)

ADDED_FILES: dict[str, str] = {"detectron2/_missing_extension.py": MISSING_EXTENSION_MODULE}


def apply_fixes(source_root: str | Path) -> list[str]:
    """Apply every fix to a detectron2 source tree in place; returns the changed paths.

    Raises ValueError naming the file if a fix no longer matches (a different detectron2).
    """
    root = Path(source_root)
    changed = []
    for fix in FIXES:
        path = root / fix.path
        try:
            path.write_text(fix.apply(path.read_text()))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot apply detectron2 fix to {path}: {err}") from err
        changed.append(fix.path)
    for rel, content in ADDED_FILES.items():
        (root / rel).write_text(content)
        changed.append(rel)
    return changed
