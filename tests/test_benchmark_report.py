"""Benchmark reports name their machine first and show each timing as a share of its floor."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from swin_scratch.benchmark.machine import Machine, cpu_model_and_flags, describe_machine
from swin_scratch.benchmark.swin import Candidate, speed_report


def test_machine_line_names_cpu_threads_torch_peaks_and_the_swin_t_floor():
    machine = describe_machine(threads=1)
    cpu, _ = cpu_model_and_flags()
    assert machine.threads == 1 and all(peak > 0 for peak in machine.gemm_gflops.values())
    line = machine.line()
    assert line.startswith(f"Machine: {cpu};") and "1 threads" in line and torch.__version__ in line
    assert "GEMM peak (GFLOP/s): fp32" in line and "floor for Swin-T 224² (9.0 GFLOP/image)" in line


def test_percent_of_floor_is_the_peak_time_over_the_measured_time():
    machine = Machine("cpu", (), 2, "x", {"fp32": 90.0, "bf16": 180.0})
    assert machine.floor_ms(9.0) == pytest.approx(100.0)
    assert machine.percent_of_floor(200.0, 9.0) == pytest.approx(50.0)
    assert machine.percent_of_floor(200.0, 9.0, "bf16") == pytest.approx(25.0)


def test_speed_report_starts_with_the_machine_and_has_a_row_per_implementation():
    machine = Machine("Test CPU", ("AVX2",), 1, torch.__version__, {"fp32": 10.0, "bf16": 20.0})

    def peers(backbone: bool, height: int, width: int) -> dict[str, Candidate]:
        return {"ours eager": Candidate(nn.Conv2d(3, 4, 3)), "timm eager": Candidate(nn.Conv2d(3, 4, 5)),
                "ours bf16": Candidate(nn.Conv2d(3, 4, 3), "bf16")}

    report = speed_report(peers, machine, rounds=1, settings=[("tiny", False, 2, 16, 16)])
    assert report.splitlines()[0] == machine.line()
    rows = [line for line in report.splitlines() if line.startswith("| tiny |")]
    assert [row.split(" | ")[1] for row in rows] == ["ours eager", "timm eager", "ours bf16"]
    assert rows[1].endswith("| 1.00 |")  # timm is its own best
    assert rows[2].endswith("| n/a |")  # no timm bf16 to compare with
    assert all("%" in row.split(" | ")[4] for row in rows)
