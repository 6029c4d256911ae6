"""Gradient accumulation (SOLVER.ACCUMULATE_STEPS, issue 24 item 2): one optimizer step per iteration
on the mean gradient of several micro-batches; 1 process x 2 steps trains like 2 processes x 1 step."""
from __future__ import annotations

import itertools
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from detectron2.data.samplers import TrainingSampler
from detectron2.solver.build import maybe_add_gradient_clipping
from detectron2.utils.events import EventStorage
from test_train_resume import assert_same_final_state
from torch import nn

from helpers.jobs import final_weights, finish, start_job, wait_for
from helpers.shapes import make_tiny_shapes, train_net_command
from swin_scratch.compat.bridges import replace_data_loader
from swin_scratch.detection.config import ConfigError, get_swin_cfg
from swin_scratch.engine.accumulation import (
    GradientAccumulationTrainer,
    batch_split,
    check_batch_split,
    scale_to_job,
)
from swin_scratch.engine.mixed_precision import MixedPrecisionTrainer
from swin_scratch.engine.train import main
from swin_scratch.engine.train_loader import AspectRatioBatchSampler, MicroBatchSampler, shard_of_index_stream


class _Scale(nn.Module):
    """loss = w * x: the gradient of w is x (the micro-batch's one number)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, data: list[float]) -> dict[str, torch.Tensor]:
        return {"loss": self.weight * data[0]}


def _clipping_sgd(model: nn.Module, clip_value: float) -> torch.optim.Optimizer:
    """SGD (lr 1) with detectron2's value clipping (done inside ``step``)."""
    cfg = get_swin_cfg(None, ["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "value",
                              "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", str(clip_value)])
    return maybe_add_gradient_clipping(cfg, torch.optim.SGD)(model.parameters(), lr=1.0)


def _run_one_iteration(trainer, loader) -> None:
    replace_data_loader(trainer, loader)  # v0.6 made its iterator in __init__, upstream makes it on first use
    with EventStorage(0):
        trainer.run_step()


def _one_iteration_of(micro_batches: list[list[float]], clip_value: float,
                      grad_scaler: torch.amp.GradScaler | None = None) -> tuple[float, int]:
    """One iteration over ``micro_batches`` (clipping SGD); returns (weight, batches read)."""
    model = _Scale()
    loader = iter(micro_batches)
    trainer = GradientAccumulationTrainer(model, loader, _clipping_sgd(model, clip_value), steps=len(micro_batches))
    trainer.grad_scaler = grad_scaler
    _run_one_iteration(trainer, loader)
    return model.weight.item(), len(micro_batches) - len(list(loader))


def test_one_step_follows_the_clipped_mean_gradient_of_all_micro_batches():
    # gradients 3 and -1: mean 1, clipped to 0.5 -> weight -0.5. Clipping each micro-batch instead
    # would give mean(0.5, -0.5) = 0; stepping per micro-batch would give -0.5 + 0.5 = 0.
    weight, read = _one_iteration_of([[3.0], [-1.0]], clip_value=0.5)
    assert read == 2
    assert weight == pytest.approx(-0.5)


def test_without_clipping_the_step_is_the_mean_gradient():
    weight, read = _one_iteration_of([[3.0], [-1.0], [4.0]], clip_value=100.0)
    assert read == 3
    assert weight == pytest.approx(-2.0)


def test_with_a_grad_scaler_the_clipping_sees_the_unscaled_gradient():
    # fp16's scaler (a CPU one here; fp16 autocast itself needs a GPU) multiplies the loss by 1024:
    # clipping the scaled gradient would leave a step of 0.5 / 1024
    weight, _ = _one_iteration_of([[3.0], [-1.0]], clip_value=0.5, grad_scaler=torch.amp.GradScaler("cpu", 1024.0))
    assert weight == pytest.approx(-0.5)


def test_without_accumulation_the_mixed_precision_step_also_clips_the_unscaled_gradient():
    model = _Scale()
    loader = iter([[3.0]])
    trainer = MixedPrecisionTrainer(model, loader, _clipping_sgd(model, clip_value=0.5), precision="bf16")
    trainer.grad_scaler = torch.amp.GradScaler("cpu", 1024.0)
    _run_one_iteration(trainer, loader)
    assert model.weight.item() == pytest.approx(-0.5)


def test_a_single_shard_is_detectron2s_training_sampler_order():
    ours = list(itertools.islice(shard_of_index_stream(10, seed=5, shard=0, num_shards=1), 35))
    assert ours == list(itertools.islice(iter(TrainingSampler(10, shuffle=True, seed=5)), 35))


def test_one_process_reads_the_micro_batches_of_the_ranks_it_stands_for():
    landscape = [index % 3 == 0 for index in range(11)]

    def shard(number: int, start_batch: int = 0) -> AspectRatioBatchSampler:
        return AspectRatioBatchSampler(11, 2, seed=4, landscape=landscape, start_batch=start_batch, shard=number,
                                       num_shards=2)

    rank0, rank1 = (list(itertools.islice(iter(shard(number)), 6)) for number in (0, 1))
    accumulated = list(itertools.islice(iter(MicroBatchSampler([shard(0), shard(1)])), 12))
    assert accumulated == [batch for pair in zip(rank0, rank1) for batch in pair]
    # resumed at iteration 3: the micro-batches of iterations 3, 4, 5
    resumed = list(itertools.islice(iter(MicroBatchSampler([shard(0, 3), shard(1, 3)])), 6))
    assert resumed == accumulated[6:]


def _scaled(world_size: int, steps: int):
    cfg = get_swin_cfg("mask_rcnn_swin_t_fpn_1x.yaml", ["SOLVER.ACCUMULATE_STEPS", str(steps)])
    return cfg, scale_to_job(cfg, world_size)


def test_reference_world_size_scaling_counts_accumulation_steps_as_processes():
    recipe, same = _scaled(world_size=2, steps=4)  # 2 x 4 = the recipe's 8 GPUs
    assert recipe.SOLVER.REFERENCE_WORLD_SIZE == 8 and recipe.SOLVER.IMS_PER_BATCH == 16
    assert (same.SOLVER.IMS_PER_BATCH, same.SOLVER.BASE_LR, same.SOLVER.MAX_ITER) == (
        16, recipe.SOLVER.BASE_LR, recipe.SOLVER.MAX_ITER)
    assert batch_split(same, 2).images_per_micro_batch == 2
    _, half = _scaled(world_size=2, steps=2)  # 4 of the recipe's 8: half the batch and LR, twice the steps
    assert (half.SOLVER.IMS_PER_BATCH, half.SOLVER.BASE_LR, half.SOLVER.MAX_ITER) == (
        8, recipe.SOLVER.BASE_LR / 2, recipe.SOLVER.MAX_ITER * 2)
    assert batch_split(half, 2).images_per_micro_batch == 2


@pytest.mark.parametrize("steps", ["0", "-2"])
def test_accumulation_steps_below_1_is_one_error_line(capsys, steps):
    assert main(["--config", "swin_shapes.yaml", "SOLVER.ACCUMULATE_STEPS", steps]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SOLVER.ACCUMULATE_STEPS must be a whole number >= 1")


def test_a_batch_that_does_not_split_into_processes_and_steps_is_one_error_line(capsys):
    assert main(["--config", "swin_shapes.yaml", "--num-gpus", "2", "MODEL.DEVICE", "cpu",
                 "SOLVER.IMS_PER_BATCH", "6", "SOLVER.ACCUMULATE_STEPS", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["error: SOLVER.IMS_PER_BATCH 6 does not split into 2 process(es) x 2 accumulation step(s) "
                     "(it must be a multiple of 4); change SOLVER.IMS_PER_BATCH or SOLVER.ACCUMULATE_STEPS"]
    with pytest.raises(ConfigError):
        check_batch_split(get_swin_cfg("swin_shapes.yaml", ["SOLVER.IMS_PER_BATCH", "2"]), world_size=4)


# Whole runs. Every proposal and anchor is sampled (sample sizes above their counts), so the only
# randomness left is the order of the sampled proposals: 1 x 2 steps and 2 x 1 step then differ
# only in the order of fp32 sums.
SAMPLE_EVERYTHING = ("MODEL.RPN.BATCH_SIZE_PER_IMAGE", "100000", "MODEL.RPN.POSITIVE_FRACTION", "1.0",
                     "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "100000", "MODEL.ROI_HEADS.POSITIVE_FRACTION", "1.0")
# SGD with momentum, so the final weights show the gradients' difference itself: AdamW divides a near-zero
# gradient's rounding by its near-zero second moment (measured with AdamW: up to 4.7e-4 in a mask-head weight).
# fp32 reduction order, the same sums in another order, 6 steps: measured 1.5e-8 at most; 1 process x 2 images
# without accumulation ends 6.0e-3 away.
SGD = ("SOLVER.OPTIMIZER", "SGD", "SOLVER.BASE_LR", "0.01", "SOLVER.MOMENTUM", "0.9")
REDUCTION_ORDER_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_tiny_shapes(tmp_path_factory.mktemp("shapes"))


def _train(output: Path, shapes: Path, *options: str, args: tuple[str, ...] = ()) -> str:
    command = train_net_command(output, shapes, "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()", *options, args=args)
    process = start_job(command)
    _, stderr = finish(process)
    assert process.returncode == 0, stderr[-3000:]
    return (output / "log.txt").read_text()


@pytest.mark.slow
def test_one_process_accumulating_2_micro_batches_ends_like_2_processes(tmp_path, shapes):
    options = ("SOLVER.MAX_ITER", "6", "SOLVER.IMS_PER_BATCH", "4", *SAMPLE_EVERYTHING, *SGD)
    log = _train(tmp_path / "accumulated", shapes, *options, "SOLVER.ACCUMULATE_STEPS", "2")
    _train(tmp_path / "two_processes", shapes, *options, args=("--num-gpus", "2"))
    assert ("effective batch 4 images per iteration = 2 per micro-batch x 1 process(es) x 2 accumulation step(s); "
            "base LR 0.01") in log
    accumulated, two_processes = final_weights(tmp_path / "accumulated"), final_weights(tmp_path / "two_processes")
    assert accumulated.keys() == two_processes.keys()
    for key, expected in two_processes.items():
        torch.testing.assert_close(accumulated[key], expected, **REDUCTION_ORDER_TOLERANCE, msg=key)


@pytest.mark.slow
def test_an_accumulating_bf16_run_with_clipping_resumes_bit_identical(tmp_path, shapes):
    # swin_shapes.yaml clips gradients (norm 1.0); bf16 autocast on the CPU; checkpoints after 2 and 5
    options = ("SOLVER.MAX_ITER", "7", "SOLVER.CHECKPOINT_PERIOD", "3", "SOLVER.IMS_PER_BATCH", "4",
               "SOLVER.ACCUMULATE_STEPS", "2", "SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.PRECISION", "bf16",
               "MODEL.SWIN.DROP_PATH_RATE", "0.2")
    _train(tmp_path / "reference", shapes, *options)
    interrupted = tmp_path / "interrupted"
    process = start_job(train_net_command(interrupted, shapes, "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()",
                                          *options))
    wait_for(process, interrupted / "last_checkpoint")
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    assert not (interrupted / "model_final.pth").exists()
    log = _train(interrupted, shapes, *options, args=("--resume",))
    start = int(re.findall(r"Starting training from iteration (\d+)", log)[-1])
    assert start in (3, 6)  # after a checkpoint, i.e. after a whole iteration of 2 micro-batches
    assert_same_final_state(tmp_path / "reference", interrupted)
