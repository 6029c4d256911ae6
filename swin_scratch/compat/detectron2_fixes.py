"""Every change this project makes to detectron2 v0.6's Python sources, in one table.

Two installs use the same table (:mod:`swin_scratch.compat.install_detectron2`):

- install mode `pb1-fallback`, :func:`apply_fixes`: PyPI's ``pb1-detectron2==0.6`` carries detectron2 v0.6 without
  its C++/CUDA sources, and the 2021 code predates NumPy 2, Pillow 10, Python 3.11, torch 2 and
  setuptools without ``pkg_resources``. Every fix must match (the sources are sha256-pinned).
- install mode `spec`, :func:`mend_installed`: an installed detectron2 (e.g. upstream main, with its compiled
  ops) gets the fixes that are not about the missing extension, each only where its buggy text
  is still there; upstream has fixed some of them, not all.

Each :class:`SourceFix` names the file, the reason, and the literal text it replaces, so the
list doubles as documentation (docs/detectron2-install.md) and is checked by tests.

This module is plain Python with no third-party imports: the installer runs it before
torch or detectron2 is importable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MISSING_EXTENSION_MODULE = (
    '''"""Stand-in for detectron2._C when the compiled extension is not built (added by swin_scratch).

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
)

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
    apply: Callable[[str], str]  # raises ValueError when the buggy text is absent
    # True: only an install without detectron2._C needs it (never applied to spec)
    for_missing_extension: bool = False


def _replace(old: str, new: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        if old not in text:
            raise ValueError(f"expected text not found: {old!r}")
        return text.replace(old, new)

    return apply


def _replace_each(*pairs: tuple[str, str]) -> Callable[[str], str]:
    """Several replacements in one file; each old text must be present."""

    def apply(text: str) -> str:
        for old, new in pairs:
            text = _replace(old, new)(text)
        return text

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
            for_missing_extension=True,
        )
        for name in ("deform_conv", "rotated_boxes", "roi_align_rotated")
    ),
    SourceFix(
        "detectron2/evaluation/fast_eval_api.py",
        "imports detectron2._C at module level; without it COCOeval_opt falls back to "
        "pycocotools' COCOeval (identical numbers, slower)",
        _append(FAST_EVAL_FALLBACK, _replace(_C_IMPORT, LAZY_C_IMPORT)),
        for_missing_extension=True,
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
        for_missing_extension=True,
    ),
    SourceFix(
        "detectron2/export/__init__.py",
        "imports the Caffe2 export API, and Caffe2 is no longer part of PyTorch; the import is made "
        "optional so TracingAdapter and the TorchScript helpers (torch.jit / ONNX export) work",
        _replace(
            "\nfrom .api import *\n",  # unindented: upstream main already imports it conditionally
            "\ntry:\n    from .api import *\n"
            "except ImportError:  # swin_scratch: caffe2 left PyTorch; Caffe2 export unavailable\n    pass\n",
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
        _replace_each(
            ("import pkg_resources\n", ""),
            (
                'cfg_file = pkg_resources.resource_filename(\n'
                '        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )',
                'cfg_file = os.path.join(os.path.dirname(__file__), "configs", config_path)',
            ),
        ),
    ),
    SourceFix(
        "detectron2/data/common.py",
        "MapDataset retries a sample whose mapper returned None with random.sample(<set>), a "
        "TypeError since Python 3.11 (training crashed instead of skipping the sample)",
        _replace(
            "self._rng.sample(self._fallback_candidates, k=1)[0]",
            "self._rng.sample(list(self._fallback_candidates), k=1)[0]",
        ),
    ),
    SourceFix(
        "detectron2/engine/hooks.py",
        "the LRScheduler hook saved only torch.optim.lr_scheduler._LRScheduler subclasses; torch>=2's "
        "own schedulers derive from LRScheduler, so a resumed run restarted their schedule",
        _replace(
            "isinstance(self.scheduler, torch.optim.lr_scheduler._LRScheduler)",
            "isinstance(self.scheduler, torch.optim.lr_scheduler.LRScheduler)",
        ),
    ),
    SourceFix(
        "detectron2/modeling/roi_heads/cascade_rcnn.py",
        "CascadeROIHeads scaled the box features' gradient (an autograd Function) in inference too, which "
        "torch.jit.trace cannot record: a cascade detector did not export; the scaling is for training only",
        _replace(
            "        # but scale down the gradients on features.\n"
            "        box_features = _ScaleGradient.apply(box_features, 1.0 / self.num_cascade_stages)\n",
            "        # but scale down the gradients on features.\n"
            "        if self.training:  # swin_scratch: as upstream; inference has no gradient to scale\n"
            "            box_features = _ScaleGradient.apply(box_features, 1.0 / self.num_cascade_stages)\n",
        ),
    ),
    SourceFix(
        "detectron2/projects/panoptic_deeplab/dataset_mapper.py",
        "imports panopticapi (installed from GitHub, not PyPI) at module level, so "
        "detectron2.projects.panoptic_deeplab did not import; the import moves into the mapper, its only user",
        _replace_each(
            ("import torch\nfrom panopticapi.utils import rgb2id\n", "import torch\n"),
            (
                "        targets = self.panoptic_target_generator(rgb2id(pan_seg_gt),",
                "        from panopticapi.utils import rgb2id  # swin_scratch: needed only here\n\n"
                "        targets = self.panoptic_target_generator(rgb2id(pan_seg_gt),",
            ),
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


def _apply(root: Path, fix: SourceFix) -> None:
    """Rewrite one file; ValueError (naming the file) when its buggy text is absent."""
    path = root / fix.path
    try:
        path.write_text(fix.apply(path.read_text()))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot apply detectron2 fix to {path}: {err}") from err


def apply_fixes(source_root: str | Path) -> list[str]:
    """Apply every fix to pb1-detectron2's source tree in place (install mode pb1-fallback); returns the changed paths.

    Raises ValueError naming the file if a fix no longer matches (a different detectron2).
    """
    root = Path(source_root)
    for fix in FIXES:
        _apply(root, fix)
    for rel, content in ADDED_FILES.items():
        (root / rel).write_text(content)
    return [fix.path for fix in FIXES] + list(ADDED_FILES)


def mend_installed(package_parent: str | Path) -> list[str]:
    """Apply to an installed detectron2 (spec) each fix whose buggy text it still has.

    ``package_parent`` is the directory holding the ``detectron2`` package (site-packages).
    Fixes for a missing compiled extension are left out: this detectron2 has its own ops.
    Idempotent: a fixed file no longer holds the buggy text. Returns the paths changed now.
    """
    root = Path(package_parent)
    mended = []
    for fix in FIXES:
        if fix.for_missing_extension or not (root / fix.path).is_file():
            continue
        try:
            _apply(root, fix)
        except ValueError:
            continue  # this detectron2 has no such bug (fixed upstream)
        mended.append(fix.path)
    return mended
