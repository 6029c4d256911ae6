"""torch.compile: Swin traces to one graph (no breaks), handles changing sizes without recompiling,
matches eager, and MODEL.SWIN.COMPILE trains."""
from __future__ import annotations

import subprocess

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from helpers.shapes import make_tiny_shapes, train_net_command
from swin_scratch.models import SwinTransformer, swin_tiny


def _explain(model: torch.nn.Module, images: torch.Tensor):
    torch._dynamo.reset()
    with torch.no_grad():
        return torch._dynamo.explain(model.eval())(images)


def test_swin_t_classifier_traces_to_one_graph_without_breaks():
    explanation = _explain(swin_tiny(), torch.rand(1, 3, 224, 224))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_swin_t_detection_backbone_traces_to_one_graph_without_breaks():
    backbone = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3))
    explanation = _explain(backbone, torch.rand(1, 3, 256, 320))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@pytest.mark.slow
def test_dynamic_compile_matches_eager_at_two_sizes_without_recompiling():
    """One stage of a regular and a shifted block (inductor's CPU codegen of a whole Swin-T takes
    minutes); both sizes shift every dimension, so one graph must serve them."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SwinTransformer(embed_dim=16, depths=(2,), num_heads=(1,), num_classes=0, out_indices=(0,),
                            drop_path_rate=0.0).eval()
    backend = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
    compiles_per_size = []
    for height, width in ((256, 320), (320, 384)):
        images = torch.rand(1, 3, height, width)
        with torch.no_grad():
            expected, actual = model(images), compiled(images)
        compiles_per_size.append(backend.frame_count)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert compiles_per_size[1] == compiles_per_size[0], "the second size recompiled"


@pytest.mark.slow
def test_training_with_a_compiled_backbone_runs(tmp_path):
    shapes = make_tiny_shapes(tmp_path / "shapes", num_train=4, num_val=2)
    command = train_net_command(
        tmp_path / "out", shapes, "SOLVER.MAX_ITER", "2", "MODEL.SWIN.COMPILE", "True",
        # aot_eager: dynamo's graph capture and autograd tracing, without inductor's minutes of C++ codegen
        "MODEL.SWIN.COMPILE_BACKEND", "aot_eager",
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "model_final.pth").exists()
    state = torch.load(tmp_path / "out" / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    assert "backbone.bottom_up.swin.layers.0.blocks.0.attn.qkv.weight" in state  # no _orig_mod prefix


def test_compile_switch_compiles_the_swin_backbone_in_place():
    from detectron2.modeling import build_model

    from swin_scratch.detection.config import get_swin_cfg

    cfg = get_swin_cfg("swin_shapes.yaml", ["MODEL.DEVICE", "cpu", "MODEL.SWIN.COMPILE", "True"])
    swin = build_model(cfg).backbone.bottom_up.swin
    assert swin._compiled_call_impl is not None
    cfg.MODEL.SWIN.COMPILE = False
    assert build_model(cfg).backbone.bottom_up.swin._compiled_call_impl is None
