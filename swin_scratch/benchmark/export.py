"""onnxruntime vs eager PyTorch latency for the exported Swin-T backbone (CPU, interleaved)."""
from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path

import torch

from swin_scratch.benchmark.timing import interleaved_medians, markdown_table
from swin_scratch.export.backbone import export_backbone
from swin_scratch.export.runner import onnx_session
from swin_scratch.models import swin_tiny

DEPLOYMENT_GOAL = 1.5  # onnxruntime ÷ eager speed-up (issue 25; printed, not asserted)


def onnxruntime_vs_eager(sizes=((224, 224), (800, 1216)), rounds: int = 10, threads: int = 2,
                         optimizations=("basic", "extended", "all")) -> str:
    """Eager PyTorch against onnxruntime at each graph optimization level, interleaved, per input size; each
    session's outputs verified against eager first (max |difference| over the four maps)."""
    torch.set_num_threads(threads)
    model = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval()
    rows, goals = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in sizes:
            images = torch.rand(1, 3, height, width)
            path = export_backbone(model, images, Path(tmp) / f"swin_{height}x{width}.onnx", "onnx")
            with torch.inference_mode():
                expected = [output.numpy() for output in model(images)]
            feed = {"images": images.numpy()}
            runners = {"eager": lambda: _eager(model, images)}
            differences = {}
            for level in optimizations:
                session = onnx_session(path, threads, optimization=level)
                outputs = session.run(None, feed)
                differences[level] = max(float(abs(o - e).max()) for o, e in zip(outputs, expected))
                runners[level] = lambda session=session: session.run(None, feed)
            medians = interleaved_medians(runners, rounds=rounds)
            for level in optimizations:
                speedup = medians["eager"] / medians[level]
                rows.append([f"{height}×{width}", level, f"{medians['eager'] * 1000:.1f}",
                             f"{medians[level] * 1000:.1f}", f"{speedup:.2f}", f"{differences[level]:.1e}"])
            best = max(optimizations, key=lambda level: medians["eager"] / medians[level])
            speedup = medians["eager"] / medians[best]
            goals.append([f"onnxruntime ≥ {DEPLOYMENT_GOAL}× eager", f"{height}×{width}",
                          f"{speedup:.2f}× (level {best})", "met" if speedup >= DEPLOYMENT_GOAL else "**not met**"])
    table = markdown_table(["Swin-T backbone, batch 1", "onnxruntime graph optimization", "eager PyTorch (ms)",
                            "onnxruntime (ms)", "speed-up", "max abs difference to eager"], rows)
    return (table + "\n\nGoals (issue 25; not asserted)\n\n"
            + markdown_table(["goal", "input", "measured", "status"], goals))


def _eager(model, images):
    with torch.inference_mode():
        return model(images)


def operator_profiles(height: int = 800, width: int = 1216, threads: int = 2, runs: int = 2, top: int = 12) -> str:
    """Where each runtime spends one Swin-T backbone forward: time per operator type (summed over the
    ``runs`` after a warm-up), onnxruntime's from its own profiler, eager PyTorch's from torch.profiler."""
    torch.set_num_threads(threads)
    model = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval()
    images = torch.rand(1, 3, height, width)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_backbone(model, images, Path(tmp) / "swin.onnx", "onnx")
        session = onnx_session(path, threads, profile_prefix=str(Path(tmp) / "ort"))
        feed = {"images": images.numpy()}
        session.run(None, feed)  # warm-up (its events are skipped below: only the last `runs` runs count)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(nodes) // (runs + 1)
    ort_ms = collections.Counter()
    for event in nodes[-per_run * runs:]:
        ort_ms[event["args"]["op_name"]] += event["dur"] / 1000 / runs
    with torch.inference_mode():
        model(images)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                model(images)
    torch_ms = {e.key: e.self_cpu_time_total / 1000 / runs for e in prof.key_averages()}
    return (f"onnxruntime, {height}×{width}, ms per forward by operator type (total {sum(ort_ms.values()):.0f} ms)\n\n"
            + _top_table(ort_ms, top) + f"\n\neager PyTorch, same input, self CPU ms per forward by op "
            f"(total {sum(torch_ms.values()):.0f} ms)\n\n" + _top_table(torch_ms, top))


def _top_table(ms: dict[str, float], top: int) -> str:
    total = sum(ms.values())
    rows = [[name, f"{value:.1f}", f"{100 * value / total:.0f}%"]
            for name, value in sorted(ms.items(), key=lambda item: -item[1])[:top]]
    return markdown_table(["operator", "ms", "share"], rows)
