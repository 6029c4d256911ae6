"""Write and run exported files: the one place that knows how TorchScript and ONNX files are made
and executed.

Backbone and detector exports, their verification against eager PyTorch and the onnxruntime
benchmark all go through these functions, so a file is always run the way it was written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17


class ExportError(RuntimeError):
    """An export that cannot be written or that does not reproduce eager PyTorch."""


def export_format(path: str | Path) -> str:
    """The format of an exported file, from its suffix (``.onnx``; anything else is TorchScript)."""
    return "onnx" if Path(path).suffix == ".onnx" else "torchscript"


def write_export(
    module: nn.Module, inputs: tuple[Tensor, ...], output: str | Path, fmt: str, **onnx_options: Any
) -> Path:
    """Trace ``module`` on ``inputs`` and write it as TorchScript or ONNX (``onnx_options``: names, dynamic axes)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use 'torchscript' or 'onnx'")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.trace(module, inputs, check_trace=False).save(str(output))
        else:
            torch.onnx.export(module, inputs, str(output), opset_version=ONNX_OPSET, dynamo=False, **onnx_options)
    return output


# onnxruntime's graph optimization levels by name (onnxruntime.GraphOptimizationLevel; "all" is its default)
ORT_OPTIMIZATIONS = ("disabled", "basic", "extended", "all")


def onnx_session(path: str | Path, threads: int | None = None, profile_prefix: str | None = None,
                 optimization: str = "all"):
    """An onnxruntime CPU session for ``path``; ``threads`` sets its intra-op thread count;
    ``profile_prefix``: onnxruntime's per-node profile is written there (``session.end_profiling()``);
    ``optimization``: its graph optimization level, one of ``ORT_OPTIMIZATIONS``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, f"ORT_ENABLE_{optimization.upper()}"
                                               if optimization != "disabled" else "ORT_DISABLE_ALL")
    if threads is not None:
        options.intra_op_num_threads = threads
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_exported(path: str | Path, *inputs: Tensor) -> list[Tensor]:
    """Run an exported file on CPU: ONNX through onnxruntime (inputs in the graph's input order),
    TorchScript through ``torch.jit.load``. Returns the outputs as a flat list of tensors."""
    if export_format(path) == "onnx":
        session = onnx_session(path)
        feed = {graph_input.name: x.numpy() for graph_input, x in zip(session.get_inputs(), inputs)}
        return [torch.from_numpy(output) for output in session.run(None, feed)]
    module = torch.jit.load(str(path))
    with torch.no_grad():
        return list(module(*inputs))
