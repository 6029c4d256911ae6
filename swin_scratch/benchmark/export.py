"""onnxruntime vs eager PyTorch latency for the exported Swin-T backbone (CPU, interleaved)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from swin_scratch.benchmark.timing import interleaved_medians, markdown_table
from swin_scratch.export.backbone import export_backbone
from swin_scratch.export.runner import onnx_session
from swin_scratch.models import swin_tiny


def onnxruntime_vs_eager(sizes=((224, 224), (800, 1216)), rounds: int = 10, threads: int = 2) -> str:
    torch.set_num_threads(threads)
    model = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in sizes:
            images = torch.rand(1, 3, height, width)
            path = export_backbone(model, images, Path(tmp) / f"swin_{height}x{width}.onnx", "onnx")
            session = onnx_session(path, threads)
            feed = {"images": images.numpy()}

            def eager():
                with torch.inference_mode():
                    model(images)

            medians = interleaved_medians({"eager": eager, "onnxruntime": lambda: session.run(None, feed)}, rounds=rounds)
            rows.append([f"{height}×{width}", f"{medians['eager'] * 1000:.1f}", f"{medians['onnxruntime'] * 1000:.1f}",
                         f"{medians['eager'] / medians['onnxruntime']:.2f}"])
    return markdown_table(["Swin-T backbone, batch 1", "eager PyTorch (ms)", "onnxruntime (ms)", "speed-up"], rows)
