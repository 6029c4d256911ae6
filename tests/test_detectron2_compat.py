"""The detectron2 compatibility fixes: each is applied, each is needed, and the docs list them all."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from swin_scratch.compat import detectron2_fixes
from swin_scratch.compat.detectron2_fixes import ADDED_FILES, FIXES, apply_fixes

REPO = Path(__file__).resolve().parents[1]


def _has_compiled_extension() -> bool:
    try:
        importlib.import_module("detectron2._C")
        return True
    except ImportError:
        return False


needs_fallback_install = pytest.mark.skipif(
    _has_compiled_extension(), reason="detectron2 has its compiled extension (case a/b install)"
)


def _write_pristine_tree(root: Path) -> None:
    """A fake detectron2 tree holding exactly the text each fix expects to replace."""
    snippets = {
        "detectron2/layers/nms.py": "import torch\n\ndef nms_rotated(boxes, scores, iou_threshold):\n"
        "    return torch.ops.detectron2.nms_rotated(boxes, scores, iou_threshold)\n",
        "detectron2/data/transforms/transform.py": "def f(interp=Image.LINEAR):\n    pass\n",
        "detectron2/export/__init__.py": "from .api import *\nfrom .flatten import TracingAdapter\n",
        "detectron2/model_zoo/model_zoo.py": "import os\nimport pkg_resources\n\ndef get_config_file(config_path):\n"
        '    cfg_file = pkg_resources.resource_filename(\n        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )\n',
    }
    for fix in FIXES:
        text = snippets.get(fix.path)
        if text is None and fix.path.endswith(("deform_conv.py", "rotated_boxes.py", "roi_align_rotated.py", "fast_eval_api.py")):
            text = "import torch\nfrom detectron2 import _C\n"
        if text is None:
            text = "x = np.zeros(3).astype(np.bool)\ny = np.int64(1)\nz = np.float\n"
        path = root / fix.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_apply_fixes_rewrites_every_listed_file(tmp_path):
    _write_pristine_tree(tmp_path)
    changed = apply_fixes(tmp_path)
    assert set(changed) == {fix.path for fix in FIXES} | set(ADDED_FILES)
    sources = {fix.path: (tmp_path / fix.path).read_text() for fix in FIXES}
    assert all("Image.LINEAR" not in text for text in sources.values())
    assert all("pkg_resources" not in text for text in sources.values())
    assert all("np.bool)" not in text and "np.float\n" not in text for text in sources.values())
    # numpy fix keeps sized types such as np.int64 untouched
    assert "np.int64(1)" in sources["detectron2/structures/masks.py"]
    assert "except ImportError" in sources["detectron2/layers/deform_conv.py"]


def test_apply_fixes_names_the_file_when_sources_differ(tmp_path):
    _write_pristine_tree(tmp_path)
    (tmp_path / "detectron2/data/transforms/transform.py").write_text("nothing to fix here\n")
    with pytest.raises(ValueError, match="transform.py"):
        apply_fixes(tmp_path)


def test_every_fix_is_listed_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for fix in FIXES:
        assert fix.path in readme, f"README's fix table lacks {fix.path}"


def test_modules_that_reference_the_compiled_extension_import():
    for name in (
        "detectron2.layers.deform_conv",
        "detectron2.layers.rotated_boxes",
        "detectron2.layers.roi_align_rotated",
        "detectron2.evaluation.fast_eval_api",
        "detectron2.model_zoo",
        "detectron2.export",
    ):
        importlib.import_module(name)


@needs_fallback_install
def test_compiled_only_ops_raise_a_clear_error_when_called():
    from detectron2.layers import nms_rotated
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    with pytest.raises(RuntimeError, match="compiled C\\+\\+/CUDA extension"):
        nms_rotated(torch.rand(2, 5), torch.rand(2), 0.5)
    with pytest.raises(RuntimeError, match="DETECTRON2_SPEC"):
        pairwise_iou_rotated(torch.rand(2, 5), torch.rand(3, 5))


def test_deformable_conv_runs_on_cpu_through_torchvision():
    """detectron2's CPU path for DeformConv uses torchvision's op, so the fallback keeps it."""
    from detectron2.layers import DeformConv

    conv = DeformConv(4, 4, kernel_size=3, padding=1)
    out = conv(torch.rand(1, 4, 8, 8), torch.zeros(1, 18, 8, 8))
    assert out.shape == (1, 4, 8, 8)


@needs_fallback_install
def test_fast_coco_eval_falls_back_to_pycocotools():
    from pycocotools.cocoeval import COCOeval

    from detectron2.evaluation.fast_eval_api import COCOeval_opt

    assert COCOeval_opt is COCOeval


def test_model_zoo_finds_configs_without_pkg_resources():
    from detectron2 import model_zoo

    path = Path(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
    assert path.is_file()


def test_extent_transform_uses_a_pillow_filter_that_exists():
    from detectron2.data.transforms import ExtentTransform

    image = (np.random.rand(20, 30, 3) * 255).astype(np.uint8)
    out = ExtentTransform(src_rect=(0, 0, 30, 20), output_size=(10, 15)).apply_image(image)
    assert out.shape == (10, 15, 3)


def test_polygon_masks_work_with_current_numpy():
    from detectron2.structures import BitMasks, PolygonMasks, polygons_to_bitmask

    polygon = [np.array([1.0, 1.0, 8.0, 1.0, 8.0, 8.0, 1.0, 8.0])]
    bitmask = polygons_to_bitmask(polygon, 10, 10)
    assert bitmask.dtype == bool and bitmask.sum() > 30
    masks = BitMasks.from_polygon_masks(PolygonMasks([polygon]), 10, 10)
    assert masks.tensor.dtype == torch.bool
    empty = polygons_to_bitmask([], 4, 4)
    assert empty.dtype == bool and not empty.any()


def test_fix_table_has_a_reason_for_each_entry():
    assert all(len(fix.reason) > 20 for fix in FIXES)
    assert detectron2_fixes.MISSING_EXTENSION_MODULE.count("def __getattr__") == 1
