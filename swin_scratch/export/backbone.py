"""Export the Swin backbone alone, then run the exported file against eager PyTorch.

Swin's export hazards are handled in the model, not avoided here: window padding, the cyclic
shift and the window reshapes (one gather of token rows each way) and the shifted-window mask are
all computed from tensor shapes while tracing, so one export runs at any input size that is a
multiple of 32.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from swin_scratch.export.runner import ExportError, export_format, run_exported, write_export
from swin_scratch.layers.window import window_geometry
from swin_scratch.models.swin import stage_name

SIZE_MULTIPLE = 32


@dataclass
class Verification:
    format: str
    input_shape: tuple[int, ...]
    max_relative_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_relative_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (f"[{self.format}] input {tuple(self.input_shape)}: max relative difference vs eager "
                f"{self.max_relative_error:.2e} (tolerance {self.tolerance:.0e}) {verdict}")


class FeatureTuple(nn.Module):
    """Backbone forward returning a tuple (tracing and ONNX want tuples, not lists)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.backbone(images))


STAGE_STRIDES = (4, 8, 16, 32)


def shift_regime(height: int, width: int, window_size: int) -> tuple[bool, ...]:
    """Which stage dimensions fit in one window (and so run without the cyclic shift).

    That decision (docs/swin.md, "a stage that fits one window is not shifted") is a Python branch,
    frozen into a trace: an export serves exactly the sizes whose regime equals its trace size's
    regime. For H, W >= 32 * (M + 1) (256 for window 7) no stage fits in one window, so one export
    serves all of them.
    """
    regime = []
    for stride in STAGE_STRIDES:
        geometry = window_geometry(height // stride, width // stride, window_size, shift_size=window_size // 2)
        regime += [geometry.shift_height == 0, geometry.shift_width == 0]
    return tuple(regime)


def check_export_size(height: int, width: int, window_size: int = 7, trace_size: tuple[int, int] | None = None) -> None:
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ExportError(
            f"input size {height}x{width} is not a multiple of {SIZE_MULTIPLE}; exported Swin backbones take "
            f"H and W that are multiples of {SIZE_MULTIPLE} (pad the image, as detectron2 does)"
        )
    if trace_size is not None and shift_regime(height, width, window_size) != shift_regime(*trace_size, window_size):
        smallest = SIZE_MULTIPLE * (window_size + 1)
        raise ExportError(
            f"input size {height}x{width} cannot run on an export traced at {trace_size[0]}x{trace_size[1]}: "
            f"some stage fits in one window at one size and not at the other, which changes the graph "
            f"(window {window_size}). Export at a size of the same kind; "
            f"sizes >= {smallest}x{smallest} all share one export"
        )


def _meta_path(path: str | Path) -> Path:
    return Path(str(path) + ".meta.json")


def relative_error(expected: Tensor, actual: Tensor) -> float:
    scale = expected.abs().max().clamp_min(1e-6)
    return float((expected - actual).abs().max() / scale)


def export_backbone(model: nn.Module, example: Tensor, output: str | Path, fmt: str) -> Path:
    """Write ``model`` (a detection-mode SwinTransformer) as TorchScript (.ts) or ONNX (.onnx)."""
    check_export_size(*example.shape[-2:], window_size=model.window_size)
    wrapper = FeatureTuple(model).eval()
    onnx_options = _onnx_names_and_dynamic_axes(wrapper, example) if fmt == "onnx" else {}
    output = write_export(wrapper, (example,), output, fmt, **onnx_options)
    meta = {"trace_size": list(example.shape[-2:]), "window_size": model.window_size}
    _meta_path(output).write_text(json.dumps(meta))
    return output


def _onnx_names_and_dynamic_axes(wrapper: FeatureTuple, example: Tensor) -> dict:
    """Input ``images`` and outputs named as in detectron2 (``stage2``..``stage5``), with batch, height
    and width left dynamic."""
    names = [stage_name(index) for index in wrapper.backbone.out_indices]
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: f"{name}_h", 3: f"{name}_w"} for name in names})
    return {"input_names": ["images"], "output_names": names, "dynamic_axes": dynamic}


def run_exported_backbone(path: str | Path, images: Tensor) -> list[Tensor]:
    """Run an exported backbone file (:func:`~.runner.run_exported`) after checking it serves this size."""
    meta = json.loads(_meta_path(path).read_text())
    check_export_size(*images.shape[-2:], window_size=meta["window_size"], trace_size=tuple(meta["trace_size"]))
    return run_exported(path, images)


def verify_backbone(model: nn.Module, path: str | Path, images: Tensor, tolerance: float = 1e-4) -> Verification:
    """Compare the exported file with eager PyTorch on ``images``; raises ExportError above tolerance."""
    with torch.no_grad():
        expected = list(FeatureTuple(model).eval()(images))
    actual = run_exported_backbone(path, images)
    if len(actual) != len(expected):
        raise ExportError(f"{path}: exported model returned {len(actual)} maps, eager {len(expected)}")
    worst = 0.0
    for e, a in zip(expected, actual):
        if e.shape != a.shape:
            raise ExportError(
                f"{path}: output shape {tuple(a.shape)} != eager {tuple(e.shape)} at input {tuple(images.shape)}"
            )
        worst = max(worst, relative_error(e, a))
    result = Verification(export_format(path), tuple(images.shape), worst, tolerance)
    if not result.ok:
        raise ExportError(f"{path}: {result}")
    return result
