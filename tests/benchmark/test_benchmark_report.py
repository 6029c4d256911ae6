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


def test_machine_files_are_named_by_vendor_family_isa_and_cores():
    amd = Machine("AMD EPYC", ("AVX2", "AVX-512", "AVX512-BF16"), 2, "x", {"fp32": 1.0}, cores=2)
    intel = Machine("Intel(R) Xeon(R) Processor", ("AVX2", "AVX-512"), 2, "x", {"fp32": 1.0}, cores=2)
    gpu = Machine("AMD EPYC", (), 2, "x", {"fp32": 1.0}, gpu="NVIDIA H200", cores=16)
    assert (amd.slug(), intel.slug(), gpu.slug()) == ("amd-epyc-avx512-2core", "intel-xeon-avx512-2core", "nvidia-h200")
    loaded = Machine("AMD EPYC", (), 2, "x", {"fp32": 1.0}, load=1.5, cores=2)
    assert loaded.line().endswith("; load average (1 min) 1.50 on 2 logical CPUs")


def test_a_report_replaces_its_own_section_of_the_machine_file_and_keeps_the_others(tmp_path, monkeypatch):
    from swin_scratch.benchmark import timing

    monkeypatch.setattr(timing, "MACHINE_FILES_DIR", tmp_path)
    machine = Machine("AMD EPYC", ("AVX-512",), 2, "x", {"fp32": 1.0}, cores=2)
    path = timing.emit_report("first speed table", timing.MACHINE_FILE, machine, "speed", command="python a.py")
    timing.emit_report("memory table", timing.MACHINE_FILE, machine, "memory", command="python b.py")
    timing.emit_report("second speed table", timing.MACHINE_FILE, machine, "speed", command="python a.py --x")
    text = path.read_text()
    assert path.name == "amd-epyc-avx512-2core.md" and text.startswith("# Benchmarks on amd-epyc-avx512-2core")
    assert "first speed table" not in text and text.count("## speed") == 1
    assert text.index("## speed") < text.index("## memory")  # replaced in place
    assert "`python a.py --x`\n\nsecond speed table" in text and "`python b.py`\n\nmemory table" in text


def test_goals_compare_our_best_with_timms_best_and_the_floor():
    from swin_scratch.benchmark.swin import Timing, goal_rows

    machine = Machine("cpu", (), 2, "x", {"fp32": 100.0, "bf16": 200.0})
    timings = [Timing("224² batch 8", "ours eager", "fp32", 8, 1.0, 9.0),
               Timing("224² batch 8", "ours compiled", "fp32", 8, 0.7, 9.0),
               Timing("224² batch 8", "timm eager", "fp32", 8, 1.0, 9.0),
               Timing("224² batch 8", "ours bf16", "bf16", 8, 0.5, 9.0),
               Timing("224² batch 8", "timm bf16", "bf16", 8, 0.55, 9.0)]
    rows = {(goal, label): (measured, status) for goal, label, measured, status in goal_rows(timings, machine)}
    assert rows[("ours best ÷ timm best ≤ 0.85 (fp32)", "224² batch 8")] == (
        "0.70 (ours compiled ÷ timm eager)", "met")
    assert rows[("ours best ÷ timm best ≤ 0.85 (bf16)", "224² batch 8")][1] == "**not met**"  # 0.91
    # fp32 floor: 9 GFLOP / 100 GFLOP/s = 90 ms per image; ours best 700 / 8 = 87.5 ms -> 103 %
    assert rows[("ours ≥ 75 % of the fp32 GEMM floor", "224² batch 8")] == ("103 % (ours compiled)", "met")
    assert rows[("ours compiled ≥ 1.3× ours eager", "224² batch 8")] == ("1.43×", "met")


def test_megapixel_report_divides_by_the_pixels_of_the_whole_batch():
    from swin_scratch.benchmark.swin import megapixel_report

    machine = Machine("cpu", (), 1, "x", {"fp32": 10.0})
    report = megapixel_report({"conv": nn.Conv2d(3, 4, 3)}, machine, rounds=1,
                              settings=((32, 48, 1), (64, 48, 1), (32, 48, 2)))
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| conv |")]
    assert [(row[1], row[2]) for row in rows] == [("32×48", "1"), ("64×48", "1"), ("32×48", "2")]
    assert rows[0][-1].rstrip(" |") == "1.00"  # the first input is the reference when 800×1216 is absent
    assert "ms per megapixel flat within 10 %" in report


def test_profile_names_the_package_line_that_called_each_op():
    from swin_scratch.benchmark.swin import profile_report
    from swin_scratch.models import SwinTransformer

    model = SwinTransformer(embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=0, out_indices=(0, 1)).eval()
    machine = Machine("cpu", (), 1, "x", {"fp32": 10.0})
    report = profile_report(model, torch.rand(1, 3, 64, 64), machine, "tiny", runs=1, top=5)
    assert report.startswith("tiny: self CPU ms per forward")
    assert "swin_scratch/models/swin.py:" in report


def test_percent_of_floor_uses_the_gemm_peak_timed_in_the_same_rounds_when_there_is_one():
    from swin_scratch.benchmark.swin import Timing

    machine = Machine("cpu", (), 2, "x", {"fp32": 100.0})
    # 9 GFLOP per image, 0.1 s per image: 100 % of a 90 GFLOP/s peak, 90 % of the machine line's 100
    assert Timing("x", "ours eager", "fp32", 1, 0.1, 9.0, peak_gflops=90.0).percent_of_floor(machine) == \
        pytest.approx(100.0)
    assert Timing("x", "ours eager", "fp32", 1, 0.1, 9.0).percent_of_floor(machine) == pytest.approx(90.0)


def test_the_recorded_command_line_can_be_pasted_into_a_shell(monkeypatch):
    import shlex

    from swin_scratch.benchmark.timing import shell_command

    monkeypatch.setattr("sys.argv", ["tools/benchmark.py", "--label", "1 thread", "--markdown"])
    command = shell_command()
    assert shlex.split(command) == ["python", "tools/benchmark.py", "--label", "1 thread", "--markdown"]
