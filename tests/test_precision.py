"""bf16: one autocast place; inference close to fp32; CPU mixed-precision training; bad values refused.

Tests taking ``device`` run on each device of ``DEVICES`` (tests/conftest.py); on CUDA they also run
fp16 (autocast, and training with the gradient scaler), which the CPU refuses."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from helpers.shapes import REPO, TINY_TRAINING_OVERRIDES, make_tiny_shapes, train_net_command
from swin_scratch.engine.mixed_precision import MixedPrecisionTrainer, build_step_trainer
from swin_scratch.models import swin_tiny
from swin_scratch.precision import PrecisionError, autocast, check_precision

# The reduced precisions each device runs: fp16 autocast only on CUDA (check_precision refuses it on CPU).
REDUCED_PRECISIONS = {"cpu": ("bf16",), "cuda": ("bf16", "fp16")}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _relative_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    return float((expected - actual.float()).abs().max() / expected.abs().max())


def test_bf16_backbone_features_are_close_to_fp32(device):
    torch.manual_seed(0)
    backbone = swin_tiny(num_classes=0, out_indices=(0, 1, 2, 3)).eval().to(device)
    images = torch.rand(1, 3, 224, 256).to(device)
    with torch.inference_mode():
        reference = backbone(images)
        for precision in REDUCED_PRECISIONS[device]:
            with autocast(precision, device):
                reduced = backbone(images)
            for fp32, low in zip(reference, reduced):
                error = _relative_error(fp32, low)
                # > 0: bf16 really ran; < 5%: 8 mantissa bits through 12 blocks (fp16 has 11: inside it too)
                assert 0 < error < 5e-2, (precision, error)


def test_fp32_is_a_no_op_and_bf16_computes_matmuls_in_bf16(device):
    layer = nn.Linear(8, 8).to(device)
    x = torch.rand(2, 8).to(device)
    with autocast("fp32", device):
        assert layer(x).dtype == torch.float32
    for precision in REDUCED_PRECISIONS[device]:
        with autocast(precision, device):
            assert layer(x).dtype == DTYPES[precision]


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


def test_mixed_precision_trainer_runs_the_forward_in_bf16_and_updates_fp32_weights(device):
    from detectron2.utils.events import EventStorage

    for precision in REDUCED_PRECISIONS[device]:
        torch.manual_seed(0)
        model = _RecordingModel().train().to(device)
        before = model.layer.weight.detach().clone()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = MixedPrecisionTrainer(model, [torch.rand(8, 4).to(device)] * 2, optimizer, precision=precision,
                                        device_type=device)
        with EventStorage(0):
            trainer.run_step()
        assert model.dtypes == [DTYPES[precision]]
        assert model.layer.weight.dtype == torch.float32 and not torch.equal(model.layer.weight, before)
        if precision == "bf16":
            assert trainer.grad_scaler is None  # bf16 needs no loss scaling
        else:  # fp16: scaled loss, and this first step found no inf/NaN gradient (the scale was kept)
            assert trainer.grad_scaler is not None and trainer.grad_scaler.get_scale() == 2.0**16


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


def _one_image_batch(height: int = 96, width: int = 128) -> list[dict]:
    """A detectron2 training batch: one image with two instances (boxes, classes, bitmasks)."""
    from detectron2.structures import BitMasks, Boxes, Instances

    instances = Instances((height, width))
    instances.gt_boxes = Boxes(torch.tensor([[8.0, 10.0, 60.0, 70.0], [70.0, 20.0, 120.0, 90.0]]))
    instances.gt_classes = torch.tensor([1, 3])
    masks = torch.zeros(2, height, width, dtype=torch.bool)
    masks[0, 10:70, 8:60] = True
    masks[1, 20:90, 70:120] = True
    instances.gt_masks = BitMasks(masks)
    image = torch.randint(0, 255, (3, height, width), dtype=torch.uint8)
    return [{"image": image, "instances": instances, "height": height, "width": width}]


def test_swin_mask_rcnn_mixed_precision_training_steps_update_fp32_weights(device):
    """Three steps of the tiny Swin Mask R-CNN through build_step_trainer, as tools/train_net.py does
    with SOLVER.AMP.ENABLED: bf16 (and on CUDA fp16 with the gradient scaler, which may skip a first
    step whose scaled gradients overflow: three steps leave room for that)."""
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from swin_scratch.detection import build_swin_optimizer, get_swin_cfg

    for precision in REDUCED_PRECISIONS[device]:
        torch.manual_seed(0)
        cfg = get_swin_cfg("swin_shapes.yaml", [*TINY_TRAINING_OVERRIDES, "MODEL.DEVICE", device,
                                                "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.PRECISION", precision])
        model = build_model(cfg).train()
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        trainer = build_step_trainer(cfg, model, [_one_image_batch()] * 3, build_swin_optimizer(cfg, model))
        assert isinstance(trainer, MixedPrecisionTrainer) and trainer.precision == precision
        with EventStorage(0) as storage:
            for _ in range(3):
                trainer.run_step()
                storage.step()
        losses = [value for value, _ in storage.history("total_loss").values()]
        assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses))), (precision, losses)
        assert all(p.dtype == torch.float32 and p.device.type == device for p in model.parameters())
        changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
        assert any(name.startswith("backbone.bottom_up") for name in changed), (precision, changed[:5])
        assert (trainer.grad_scaler is not None) == (precision == "fp16")


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
