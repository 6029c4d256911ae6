"""bf16: one autocast place; inference close to fp32; CPU mixed-precision training; bad values refused."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from swin_scratch.detection.mixed_precision import MixedPrecisionTrainer, build_step_trainer
from swin_scratch.models import swin_tiny
from swin_scratch.precision import PrecisionError, autocast, check_precision

from shapes_helpers import REPO, make_tiny_shapes, train_net_command


def _relative_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    return float((expected - actual.float()).abs().max() / expected.abs().max())


def test_bf16_backbone_features_are_close_to_fp32():
    torch.manual_seed(0)
    backbone = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval()
    images = torch.rand(1, 3, 224, 256)
    with torch.inference_mode():
        reference = backbone(images)
        with autocast("bf16", "cpu"):
            reduced = backbone(images)
    for fp32, bf16 in zip(reference, reduced):
        error = _relative_error(fp32, bf16)
        assert 0 < error < 5e-2, error  # > 0: bf16 really ran; < 5%: 8 mantissa bits through 12 blocks


def test_fp32_is_a_no_op_and_bf16_computes_matmuls_in_bf16():
    layer = nn.Linear(8, 8)
    x = torch.rand(2, 8)
    with autocast("fp32", "cpu"):
        assert layer(x).dtype == torch.float32
    with autocast("bf16", "cpu"):
        assert layer(x).dtype == torch.bfloat16


@pytest.mark.parametrize("precision,pattern", [("fp16", "SOLVER.AMP.PRECISION: fp16 needs a GPU"),
                                               ("fp64", "unknown precision 'fp64'; choose one of fp32, bf16, fp16")])
def test_unusable_precisions_are_refused_naming_the_key(precision, pattern):
    with pytest.raises(PrecisionError, match=pattern):
        check_precision(precision, "cpu", source="SOLVER.AMP.PRECISION")


def test_train_net_refuses_fp16_training_on_cpu_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "tools/train_net.py"), "--config", "swin_shapes.yaml",
         "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.PRECISION", "fp16", "OUTPUT_DIR", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: SOLVER.AMP.PRECISION: fp16 needs a GPU (device 'cpu'); use bf16 or fp32 on CPU"]
    assert not (tmp_path / "out").exists()


class _RecordingModel(nn.Module):
    """Returns a loss dict like a detectron2 model and records the dtype its layer computed in."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.dtypes: list[torch.dtype] = []

    def forward(self, batch):
        out = self.layer(batch)
        self.dtypes.append(out.dtype)
        return {"loss": out.float().square().mean()}


def test_mixed_precision_trainer_runs_the_forward_in_bf16_and_updates_fp32_weights():
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    model = _RecordingModel().train()
    before = model.layer.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = MixedPrecisionTrainer(model, [torch.rand(8, 4)] * 2, optimizer, precision="bf16", device_type="cpu")
    with EventStorage(0):
        trainer.run_step()
    assert model.dtypes == [torch.bfloat16]
    assert model.layer.weight.dtype == torch.float32 and not torch.equal(model.layer.weight, before)
    assert trainer.grad_scaler is None  # bf16 needs no loss scaling


def test_amp_config_picks_the_mixed_precision_trainer_on_cpu():
    from detectron2.engine import SimpleTrainer

    from swin_scratch.detection.config import get_swin_cfg

    model, loader = _RecordingModel(), [torch.rand(8, 4)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plain = build_step_trainer(get_swin_cfg(None, ["MODEL.DEVICE", "cpu"]), model, loader, optimizer)
    mixed = build_step_trainer(get_swin_cfg(None, ["MODEL.DEVICE", "cpu", "SOLVER.AMP.ENABLED", "True"]),
                               model, loader, optimizer)
    assert type(plain) is SimpleTrainer
    assert isinstance(mixed, MixedPrecisionTrainer) and (mixed.precision, mixed.device_type) == ("bf16", "cpu")


@pytest.mark.slow
def test_bf16_training_on_cpu_runs_two_iterations(tmp_path):
    shapes = make_tiny_shapes(tmp_path / "shapes", num_train=4, num_val=2)
    command = train_net_command(tmp_path / "out", shapes, "SOLVER.MAX_ITER", "2", "SOLVER.AMP.ENABLED", "True")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / "out" / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


@pytest.mark.slow
def test_export_verification_in_bf16_runs_eager_under_autocast_with_the_bf16_tolerance(tmp_path, capsys):
    from swin_scratch.export.cli import main

    tiny = ["MODEL.SWIN.EMBED_DIM", "16", "MODEL.SWIN.DEPTHS", "[2, 2, 2, 2]", "MODEL.SWIN.NUM_HEADS", "[1, 1, 2, 2]"]
    code = main(["--config", "swin_shapes.yaml", "--format", "torchscript", "--output", str(tmp_path),
                 "--precision", "bf16", *tiny])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[torchscript]")]
    assert code == 0 and len(lines) == 2
    assert all("(tolerance 5e-02) OK" in line for line in lines)
    # bf16 really ran: the eager side differs from the fp32 export by more than fp32 rounding
    assert all(float(line.split("vs eager ")[1].split()[0]) > 1e-4 for line in lines), lines
