"""Benchmark reports name their machine first and show each timing as a share of its floor, on each
device of ``DEVICES`` (tests/conftest.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from swin_scratch.benchmark.machine import Machine, cpu_model_and_flags, describe_machine
from swin_scratch.benchmark.swin import Candidate, speed_report


def test_machine_line_names_cpu_threads_torch_peaks_and_the_swin_t_floor(device):
    machine = describe_machine(threads=1, device=device)
    cpu, _ = cpu_model_and_flags()
    assert machine.threads == 1 and all(peak > 0 for peak in machine.gemm_gflops.values())
    assert machine.device == device
    line = machine.line()
    if device == "cpu":
        assert line.startswith(f"Machine: {cpu};") and "1 threads" in line and torch.__version__ in line
        assert "GEMM peak (GFLOP/s): fp32" in line and "floor for Swin-T 224² (9.0 GFLOP/image)" in line
    else:
        assert line.startswith(f"Machine: GPU {torch.cuda.get_device_name()} (host CPU: {cpu}, 1 threads);")
        assert f"torch {torch.__version__}, CUDA {torch.version.cuda};" in line
        assert "GEMM peak (GFLOP/s): fp32 (TF32 off)" in line and ", bf16 " in line and ", fp16 " in line
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_gpu_machine_line_names_the_gpu_and_shows_sub_millisecond_floors():
    machine = Machine("Host CPU", (), 16, "2.11.0+cu130, CUDA 13.0", {"fp32": 45000.0, "bf16": 900000.0},
                      gpu="Test GPU")
    assert machine.device == "cuda"
    assert machine.line() == (
        "Machine: GPU Test GPU (host CPU: Host CPU, 16 threads); torch 2.11.0+cu130, CUDA 13.0; "
        "GEMM peak (GFLOP/s): fp32 (TF32 off) 45000, bf16 900000; "
        "floor for Swin-T 224² (9.0 GFLOP/image): fp32 0.200 ms, bf16 0.010 ms"
    )


def test_percent_of_floor_is_the_peak_time_over_the_measured_time():
    machine = Machine("cpu", (), 2, "x", {"fp32": 90.0, "bf16": 180.0})
    assert machine.floor_ms(9.0) == pytest.approx(100.0)
    assert machine.percent_of_floor(200.0, 9.0) == pytest.approx(50.0)
    assert machine.percent_of_floor(200.0, 9.0, "bf16") == pytest.approx(25.0)


def test_speed_report_starts_with_the_machine_and_has_a_row_per_implementation(device):
    machine = Machine("Test CPU", ("AVX2",), 1, torch.__version__, {"fp32": 10.0, "bf16": 20.0},
                      gpu=None if device == "cpu" else "Test GPU")

    def peers(backbone: bool, height: int, width: int) -> dict[str, Candidate]:
        return {"ours eager": Candidate(nn.Conv2d(3, 4, 3).to(device)),
                "timm eager": Candidate(nn.Conv2d(3, 4, 5).to(device)),
                "ours bf16": Candidate(nn.Conv2d(3, 4, 3).to(device), "bf16")}

    report = speed_report(peers, machine, rounds=1, settings=[("tiny", False, 2, 16, 16)])
    assert report.splitlines()[0] == machine.line()
    rows = [line for line in report.splitlines() if line.startswith("| tiny |")]
    assert [row.split(" | ")[1] for row in rows] == ["ours eager", "timm eager", "ours bf16"]
    assert rows[1].endswith("| 1.00 |")  # timm is its own best
    assert rows[2].endswith("| n/a |")  # no timm bf16 to compare with
    assert all("%" in row.split(" | ")[4] for row in rows)


def test_detection_benchmark_says_where_swin_training_memory_goes():
    from swin_scratch.benchmark.detection import kept_for_backward_table

    table = kept_for_backward_table(64, 96)
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in table.splitlines()[2:]}
    assert "attn (attention core: q·k, softmax, ·v)" in rows and "mlp (fc1 output, for the GELU)" in rows
    assert "mlp.act" not in rows and "mlp.fc2" not in rows  # the GELU output is recomputed, not kept
