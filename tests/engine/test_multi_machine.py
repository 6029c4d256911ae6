"""Jobs of several machines, simulated on loopback with CPU processes (gloo), and elastic restarts
(issue 24, items 3-5). Every launcher ends with weights torch.equal to one machine x 2 processes:

- detectron2's flags (--num-machines 2 --machine-rank R --dist-url tcp://...), one process each;
- torchrun --nnodes 2, with the static rendezvous (--node-rank, --master-addr) and with c10d;
- two SLURM tasks (the variables srun sets), which join the job without spawning;
- torchrun --max-restarts 1 on one machine, one worker SIGKILLed after the first checkpoint: the
  restarted processes form a new group and resume from the newest checkpoint by themselves.
"""
from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest

from helpers.jobs import (
    assert_equal_weights,
    final_weights,
    finish,
    free_port,
    rank_reports,
    reporting_script,
    start_job,
    wait_for,
)
from helpers.shapes import make_tiny_shapes, train_net_command

pytestmark = pytest.mark.slow

# Checkpoints after iterations 2 and 5; drop-path on, so each rank's own RNG stream matters too.
OPTIONS = ("SOLVER.MAX_ITER", "8", "SOLVER.CHECKPOINT_PERIOD", "3", "SOLVER.IMS_PER_BATCH", "4",
           "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()", "MODEL.SWIN.DROP_PATH_RATE", "0.2")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
# One intra-op thread in every process: torchrun sets it for more than one process per node, and the
# thread count changes the order of fp32 sums (the weights would differ in the last bits).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_tiny_shapes(tmp_path_factory.mktemp("shapes"))


def _train_net_args(output: Path, shapes: Path, *launcher_flags: str) -> list[str]:
    """tools/train_net.py's arguments (after the script)."""
    return train_net_command(output, shapes, *OPTIONS, args=launcher_flags)[2:]


def _script(tmp_path: Path) -> str:
    return str(reporting_script(tmp_path))


def _run_together(commands: list[list[str]], envs: list[dict[str, str]] | None = None) -> list[str]:
    """Start the processes of one job (one per simulated machine); all must exit 0. Returns their stderr."""
    envs = envs or [{}] * len(commands)
    processes = [start_job(command, {**ONE_THREAD, **env}) for command, env in zip(commands, envs)]
    outputs = [finish(process) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return [stderr for _, stderr in outputs]


@pytest.fixture(scope="module")
def one_machine(shapes, tmp_path_factory) -> Path:
    """The reference: one machine, --num-gpus 2 (two CPU processes)."""
    output = tmp_path_factory.mktemp("one_machine") / "out"
    _run_together([[sys.executable, _script(output.parent), *_train_net_args(output, shapes, "--num-gpus", "2")]])
    return output


def test_detectron2_multi_machine_flags_train_like_one_machine(tmp_path, shapes, one_machine):
    output, url = tmp_path / "out", f"tcp://127.0.0.1:{free_port()}"
    _run_together([[sys.executable, _script(tmp_path), *_train_net_args(
        output, shapes, "--num-machines", "2", "--machine-rank", str(rank), "--num-gpus", "1", "--dist-url", url)]
        for rank in (0, 1)])
    assert_equal_weights(final_weights(one_machine), final_weights(output), "model_final")


@pytest.mark.parametrize("rendezvous", ["static", "c10d"])
def test_torchrun_with_two_nodes_trains_like_one_machine(tmp_path, shapes, one_machine, rendezvous):
    output, port = tmp_path / "out", free_port()
    if rendezvous == "static":
        flags = [["--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port)]
                 for rank in (0, 1)]
    else:
        flags = [["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two_nodes"]] * 2
    _run_together([[*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", *node_flags, _script(tmp_path),
                    *_train_net_args(output, shapes)] for node_flags in flags])
    assert_equal_weights(final_weights(one_machine), final_weights(output), "model_final")


def _slurm_task(rank: int, port: int) -> dict[str, str]:
    """What srun sets for task ``rank`` of a 2-node job with one task per node (MASTER_ADDR: loopback)."""
    return {"SLURM_PROCID": str(rank), "SLURM_NTASKS": "2", "SLURM_LOCALID": "0", "SLURM_NODEID": str(rank),
            "SLURM_JOB_NODELIST": "node[01-02]", "SLURM_JOB_ID": "777", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port)}


def test_two_slurm_tasks_join_one_job_without_spawning_and_train_like_one_machine(tmp_path, shapes, one_machine):
    output, port = tmp_path / "out", free_port()
    command = [sys.executable, _script(tmp_path), *_train_net_args(output, shapes)]
    processes = [start_job(command, {**ONE_THREAD, **_slurm_task(rank, port)}) for rank in (0, 1)]
    for process in processes:
        _, stderr = finish(process)
        assert process.returncode == 0, stderr[-3000:]
    # each task is a rank itself: the process SLURM started trained, no process was spawned
    assert [report["pid"] for report in rank_reports(output, 2)] == [process.pid for process in processes]
    assert_equal_weights(final_weights(one_machine), final_weights(output), "model_final")


def test_torchrun_restarts_a_killed_worker_and_resumes_by_itself_to_the_same_weights(tmp_path, shapes, one_machine):
    output = tmp_path / "out"
    process = start_job([*TORCHRUN, "--standalone", "--nproc-per-node", "2", "--max-restarts", "1",
                         _script(tmp_path), *_train_net_args(output, shapes)], ONE_THREAD)
    wait_for(process, output / "rank1.pid", output / "last_checkpoint")
    first_pids = [(output / f"rank{rank}.pid").read_text() for rank in (0, 1)]
    os.kill(int(first_pids[1]), signal.SIGKILL)
    _, stderr = finish(process)
    assert process.returncode == 0, stderr[-3000:]

    starts = [int(n) for n in re.findall(r"Starting training from iteration (\d+)", (output / "log.txt").read_text())]
    assert starts[0] == 0 and len(starts) == 2 and starts[1] > 0, starts  # the restart resumed, no --resume given
    assert re.search(r"^notice: restart 1 of this job: resuming from the newest readable checkpoint", stderr,
                     re.MULTILINE), stderr[-3000:]
    assert [(output / f"rank{rank}.pid").read_text() for rank in (0, 1)] != first_pids  # new processes
    assert_equal_weights(final_weights(one_machine), final_weights(output), "model_final")
