"""Export whole detectron2 detectors (Mask/Faster R-CNN, RetinaNet with a Swin backbone) through
detectron2's ``TracingAdapter``, then run the exported file against eager PyTorch on the same image.

Detector exports are traced at one image size: the proposal/detection counts, the padded batch
shape and post-processing are recorded for that size. The tool therefore only accepts that size
for verification and says so (``--help``, README); the backbone export is size-generic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from swin_scratch.export.runner import ExportError, export_format, run_exported, write_export
from swin_scratch.weights.files import atomic_write_bytes, read_checkpoint


def _adapter(model: nn.Module, image: Tensor):
    from detectron2.export import TracingAdapter

    def inference(model, image):
        inputs = [{"image": image}]  # no "height"/"width": outputs stay in the input's resolution
        return model.inference(inputs, do_postprocess=False)[0]

    return TracingAdapter(model, image, inference)


@dataclass
class DetectorVerification:
    format: str
    image_shape: tuple[int, ...]
    differences: dict[str, float] = field(default_factory=dict)
    tolerance: float = 1e-3

    @property
    def ok(self) -> bool:
        return all(value <= self.tolerance for value in self.differences.values())

    def __str__(self) -> str:
        parts = ", ".join(f"{name} {value:.2e}" for name, value in self.differences.items())
        return (f"[{self.format}] image {tuple(self.image_shape)}: max difference vs eager: {parts} "
                f"(tolerance {self.tolerance:.0e}) {'OK' if self.ok else 'FAILED'}")


def export_detector(model: nn.Module, image: Tensor, output: str | Path, fmt: str) -> Path:
    """Trace ``model`` (eval mode) on ``image`` (3, H, W uint8/float) and write TorchScript or ONNX."""
    adapter = _adapter(model.eval(), image)
    output = write_export(adapter, adapter.flattened_inputs, output, fmt)
    # the output schema (which flat tensor is boxes, scores, ...) is needed to read results back
    meta = {"outputs_schema": repr(adapter.outputs_schema), "image_shape": list(image.shape)}
    atomic_write_bytes(str(output) + ".meta.pth", lambda handle: torch.save(meta, handle))
    return output


def _flat_outputs_eager(model: nn.Module, image: Tensor) -> tuple[list[Tensor], object]:
    adapter = _adapter(model.eval(), image)
    with torch.no_grad():
        flat = adapter(*adapter.flattened_inputs)
    return list(flat), adapter.outputs_schema


def run_exported_detector(path: str | Path, image: Tensor) -> list[Tensor]:
    """Run an exported detector file (:func:`~.runner.run_exported`) on an image of its traced size."""
    path = Path(path)
    meta = read_checkpoint(str(path) + ".meta.pth")
    if list(image.shape) != meta["image_shape"]:
        raise ExportError(
            f"{path} was traced at image shape {tuple(meta['image_shape'])}; exported detectors only accept that "
            f"size (got {tuple(image.shape)}). Resize/pad to it, or export the backbone, which takes any "
            "multiple of 32."
        )
    return run_exported(path, image)


def verify_detector(model: nn.Module, path: str | Path, image: Tensor, tolerance: float = 1e-3) -> DetectorVerification:
    """Same image through eager and exported model; boxes/scores/masks compared, classes exactly."""
    expected, schema = _flat_outputs_eager(model, image)
    actual = run_exported_detector(path, image)
    result = DetectorVerification(export_format(path), tuple(image.shape), tolerance=tolerance)
    if len(actual) != len(expected):
        raise ExportError(f"{path}: {len(actual)} outputs, eager has {len(expected)}")
    names = _output_names(schema, len(expected))
    for name, e, a in zip(names, expected, actual):
        if e.shape != a.shape:
            raise ExportError(f"{path}: output {name} shape {tuple(a.shape)} != eager {tuple(e.shape)}")
        if e.numel() == 0:
            result.differences[name] = 0.0
            continue
        diff = (e.double() - a.double()).abs().max().item()
        scale = max(1.0, e.double().abs().max().item()) if e.is_floating_point() else 1.0
        result.differences[name] = diff / scale
    if not result.ok:
        raise ExportError(f"{path}: {result}")
    return result


def _output_names(schema, count: int) -> list[str]:
    names = getattr(schema, "names", None) or getattr(getattr(schema, "schema", None), "names", None)
    if names and len(names) == count:
        return list(names)
    return [f"output{i}" for i in range(count)]
