"""Running as one task of a SLURM job step (``srun python tools/train_net.py ...``).

SLURM starts every process itself (one task per GPU) and tells each which one it is through its
environment; ``train_net.py`` then joins the job's process group instead of spawning processes:

    SLURM_PROCID       this task's rank                  SLURM_NTASKS   the world size
    SLURM_LOCALID      its rank on its node              SLURM_NODEID   its node's index (machine rank)
    SLURM_STEP_NODELIST / SLURM_JOB_NODELIST  the nodes, compressed ("gpu[01-02]"): rank 0 runs on the first
    SLURM_JOB_ID       the job, for a port that other jobs on the same nodes do not use

``MASTER_ADDR`` / ``MASTER_PORT`` win when set (e.g. an address on a faster network). The node list
is expanded here, without ``scontrol`` (which compute nodes may not have).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

# Ports 20000-29999: below Linux's ephemeral range (32768-60999), so no outgoing connection holds one.
PORT_BASE, PORT_SPAN = 20000, 10000
DEFAULT_PORT = 29500  # torch's, when neither MASTER_PORT nor SLURM_JOB_ID says otherwise


class SlurmEnvironmentError(ValueError):
    """SLURM's variables describe a job this launcher cannot run (the message says which and why)."""


def split_outside_brackets(text: str, separator: str = ",") -> list[str]:
    """``"a[1,2],b"`` -> ``["a[1,2]", "b"]``: commas inside ``[...]`` separate ranges, not hosts."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise SlurmEnvironmentError(f"node list {text!r} has unbalanced brackets")
    return parts + [current]


def expand_range(text: str) -> list[str]:
    """``"01-03"`` -> ``["01", "02", "03"]`` (zero padding kept); ``"5"`` -> ``["5"]``."""
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text.strip())
    if not match:
        raise SlurmEnvironmentError(f"cannot read node range {text!r}")
    first, last = match.group(1), match.group(2) or match.group(1)
    if int(last) < int(first):
        raise SlurmEnvironmentError(f"node range {text!r} runs backwards")
    return [str(number).zfill(len(first)) for number in range(int(first), int(last) + 1)]


def expand_hostname(pattern: str) -> list[str]:
    """One host pattern, each ``[...]`` group expanded in order: ``"r[1-2]n[1,3]"`` -> r1n1, r1n3, r2n1, r2n3."""
    start = pattern.find("[")
    if start < 0:
        return [pattern]
    end = pattern.index("]", start)
    values = [value for part in pattern[start + 1:end].split(",") for value in expand_range(part)]
    return [pattern[:start] + value + rest for value in values for rest in expand_hostname(pattern[end + 1:])]


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compressed host list in full: ``"name[1-3,5]"`` -> name1, name2, name3, name5;
    ``"a-[01-02],b"`` -> a-01, a-02, b."""
    hosts = [host for part in split_outside_brackets(nodelist.strip()) if part for host in expand_hostname(part)]
    if not hosts:
        raise SlurmEnvironmentError(f"empty node list {nodelist!r}")
    return hosts


def port_for_job(job_id: Optional[str]) -> int:
    """A port derived from the job id: every task of the job computes the same one, and jobs that
    share a node (one each on different GPUs) almost never do."""
    if not job_id or not job_id.isdigit():
        return DEFAULT_PORT
    return PORT_BASE + int(job_id) % PORT_SPAN


@dataclass(frozen=True)
class SlurmTask:
    """Where this process sits in the job: what ``torch.distributed`` needs to join it."""

    rank: int
    world_size: int
    local_rank: int
    machine_rank: int
    num_machines: int
    master_addr: str
    master_port: int

    @property
    def tasks_per_machine(self) -> int:
        return self.world_size // self.num_machines

    @property
    def init_method(self) -> str:
        return f"tcp://{self.master_addr}:{self.master_port}"

    def describe(self) -> str:
        return (f"SLURM task {self.rank} of {self.world_size} (node {self.machine_rank} of {self.num_machines}, "
                f"local rank {self.local_rank}); process group at {self.init_method}")


def _integer(env: Mapping[str, str], name: str, default: Optional[int] = None) -> int:
    value = env.get(name)
    if value is None and default is not None:
        return default
    if value is None or not value.strip().isdigit():
        raise SlurmEnvironmentError(f"{name}={value!r} is not a number")
    return int(value)


def slurm_task_from_env(env: Mapping[str, str] = os.environ) -> Optional[SlurmTask]:
    """This process's :class:`SlurmTask`, or None outside a SLURM job step (no SLURM_PROCID/SLURM_NTASKS).

    Tasks must be placed in blocks (srun's default ``--distribution=block``: node 0 has ranks
    0..k-1, node 1 the next k, ...), the same number per node, as ``--num-machines`` jobs are.
    """
    if "SLURM_PROCID" not in env or "SLURM_NTASKS" not in env:
        return None
    rank, world_size = _integer(env, "SLURM_PROCID"), _integer(env, "SLURM_NTASKS")
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    hosts = expand_nodelist(nodelist) if nodelist else ["127.0.0.1"]
    task = SlurmTask(
        rank=rank,
        world_size=world_size,
        local_rank=_integer(env, "SLURM_LOCALID", default=0),
        machine_rank=_integer(env, "SLURM_NODEID", default=0),
        num_machines=len(hosts),
        master_addr=env.get("MASTER_ADDR") or hosts[0],
        master_port=_integer(env, "MASTER_PORT") if env.get("MASTER_PORT") else port_for_job(env.get("SLURM_JOB_ID")),
    )
    check_block_placement(task)
    return task


def check_block_placement(task: SlurmTask) -> None:
    """Ranks of one node must be consecutive and every node must have as many (detectron2's local
    process group and per-machine batch logic assume it)."""
    if task.world_size % task.num_machines:
        raise SlurmEnvironmentError(
            f"{task.world_size} tasks on {task.num_machines} nodes is not the same number per node; "
            "use srun --ntasks-per-node (one task per GPU)")
    if task.rank != task.machine_rank * task.tasks_per_machine + task.local_rank:
        raise SlurmEnvironmentError(
            f"task {task.rank} is local rank {task.local_rank} on node {task.machine_rank}: tasks are not placed in "
            "blocks; use srun --distribution=block (the default)")
