"""SLURM's environment read without scontrol (issue 24, item 3): the compressed node list, the port,
and where a task sits in the job; and when a restarted job resumes by itself (item 4). A simulated
2-task job and a torchrun restart train in tests/engine/test_multi_machine.py."""
from __future__ import annotations

import pytest

from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.engine.launch import planned_world_size
from swin_scratch.engine.slurm import (
    PORT_BASE,
    PORT_SPAN,
    SlurmEnvironmentError,
    expand_nodelist,
    port_for_job,
    slurm_task_from_env,
)
from swin_scratch.engine.train import build_parser, launcher_flags_given, main, resumes


@pytest.mark.parametrize("nodelist,hosts", [
    ("name[1-3,5]", ["name1", "name2", "name3", "name5"]),
    ("a-[01-02],b", ["a-01", "a-02", "b"]),
    ("gpu[008-011]", ["gpu008", "gpu009", "gpu010", "gpu011"]),
    ("single", ["single"]),
    ("x[9-10],y[1],z", ["x9", "x10", "y1", "z"]),
    ("rack[1-2]-node[1,3]", ["rack1-node1", "rack1-node3", "rack2-node1", "rack2-node3"]),
])
def test_a_compressed_node_list_expands_to_every_host_in_order(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("nodelist", ["name[1-3", "name[3-1]", "name[a-b]", ""])
def test_a_node_list_that_cannot_be_read_is_named(nodelist):
    with pytest.raises(SlurmEnvironmentError, match="node"):
        expand_nodelist(nodelist)


def test_the_port_comes_from_the_job_id_and_stays_below_the_ephemeral_range():
    assert port_for_job("123456") == port_for_job("123456") == PORT_BASE + 123456 % PORT_SPAN
    assert port_for_job("123456") != port_for_job("123457")
    assert all(PORT_BASE <= port_for_job(str(job)) < 32768 for job in (0, 9999, 10**9 + 7))
    assert port_for_job(None) == 29500


def _job(rank: int, **extra: str) -> dict[str, str]:
    """The variables srun sets for task ``rank`` of 16 tasks on nodes gpu-[07-08] (8 per node)."""
    return {"SLURM_PROCID": str(rank), "SLURM_NTASKS": "16", "SLURM_LOCALID": str(rank % 8),
            "SLURM_NODEID": str(rank // 8), "SLURM_JOB_NODELIST": "gpu-[07-08]", "SLURM_JOB_ID": "4242", **extra}


def test_a_task_knows_its_rank_node_and_the_first_hosts_address():
    task = slurm_task_from_env(_job(11))
    assert (task.rank, task.world_size, task.local_rank, task.machine_rank) == (11, 16, 3, 1)
    assert (task.num_machines, task.tasks_per_machine) == (2, 8)
    assert task.init_method == f"tcp://gpu-07:{port_for_job('4242')}"


def test_master_addr_and_port_win_over_the_node_list_and_job_id():
    task = slurm_task_from_env(_job(0, MASTER_ADDR="10.1.2.3", MASTER_PORT="31000"))
    assert task.init_method == "tcp://10.1.2.3:31000"


def test_the_step_node_list_wins_over_the_jobs():
    task = slurm_task_from_env(_job(0, SLURM_STEP_NODELIST="gpu-[08,07]"))
    assert task.master_addr == "gpu-08"


def test_no_slurm_task_outside_a_job_step():
    assert slurm_task_from_env({"SLURM_JOB_ID": "1"}) is None
    assert slurm_task_from_env({}) is None


def test_tasks_not_placed_in_blocks_are_refused_with_the_fix():
    with pytest.raises(SlurmEnvironmentError, match="--distribution=block"):
        slurm_task_from_env(_job(3, SLURM_NODEID="1"))  # cyclic: rank 3 on node 1
    with pytest.raises(SlurmEnvironmentError, match="same number per node"):
        slurm_task_from_env(_job(0, SLURM_NTASKS="15"))


def test_explicit_launcher_flags_win_over_slurms_environment():
    parser = build_parser()
    assert not launcher_flags_given(parser.parse_args(["--config", "x.yaml"]))
    flags = parser.parse_args(["--config", "x.yaml", "--num-gpus", "8", "--num-machines", "2", "--machine-rank", "1",
                               "--dist-url", "tcp://gpu-07:23456"])
    assert launcher_flags_given(flags)
    assert planned_world_size(2, 1, slurm_task_from_env(_job(0))) == 16
    assert planned_world_size(2, 1, None) == 2


def test_a_bad_slurm_environment_is_one_error_line(capsys, monkeypatch):
    for name, value in _job(0, SLURM_NODEID="1").items():
        monkeypatch.setenv(name, value)
    assert main(["--config", "swin_shapes.yaml"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: task 0 is local rank 0 on node 1")


@pytest.mark.parametrize("variables,auto_resume,expected", [
    ({}, False, False),
    ({}, True, True),  # SOLVER.AUTO_RESUME
    ({"TORCHELASTIC_RESTART_COUNT": "0"}, False, False),  # torchrun's first start
    ({"TORCHELASTIC_RESTART_COUNT": "1"}, False, True),  # torchrun restarted the workers
    ({"SLURM_RESTART_COUNT": "2"}, False, True),  # SLURM requeued the job
])
def test_a_restarted_or_requeued_job_resumes_without_being_told(monkeypatch, capsys, variables, auto_resume,
                                                                 expected):
    for name in ("TORCHELASTIC_RESTART_COUNT", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    cfg = get_swin_cfg("swin_shapes.yaml", ["SOLVER.AUTO_RESUME", str(auto_resume)])
    assert resumes(build_parser().parse_args(["--config", "swin_shapes.yaml"]), cfg) is expected
    assert resumes(build_parser().parse_args(["--config", "swin_shapes.yaml", "--resume"]), cfg) is True
