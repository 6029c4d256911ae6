"""Start one process per device: detectron2-style ``--num-gpus`` spawning, or ``torchrun``'s environment.

detectron2 v0.6's ``launch`` requires CUDA and NCCL; this one also runs CPU processes with gloo
(``--num-gpus N MODEL.DEVICE cpu`` means N CPU processes), and, when started by ``torchrun``,
joins the process group that torchrun's rendezvous describes instead of spawning.
"""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detectron2.utils import comm

DEFAULT_TIMEOUT = timedelta(minutes=30)


def started_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"))


def default_backend(use_cuda: bool) -> str:
    return "nccl" if use_cuda else "gloo"


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_local_process_group(processes_per_machine: int) -> None:
    """detectron2's ``comm.get_local_rank()`` needs a group of the ranks on this machine.

    Bridges detectron2 versions: upstream main has ``comm.create_local_process_group``; v0.6
    expects callers to set ``comm._LOCAL_PROCESS_GROUP`` themselves.
    """
    if hasattr(comm, "create_local_process_group"):
        comm.create_local_process_group(processes_per_machine)
        return
    world_size = dist.get_world_size()
    machine_rank = dist.get_rank() // processes_per_machine
    for machine in range(world_size // processes_per_machine):
        ranks = list(range(machine * processes_per_machine, (machine + 1) * processes_per_machine))
        group = dist.new_group(ranks)
        if machine == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group


def _init_and_run(
    global_rank: int,
    local_rank: int,
    world_size: int,
    processes_per_machine: int,
    init_method: str,
    use_cuda: bool,
    main_func: Callable[..., Any],
    args: tuple,
    timeout: timedelta,
) -> None:
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend=default_backend(use_cuda), init_method=init_method, world_size=world_size, rank=global_rank, timeout=timeout
    )
    setup_local_process_group(processes_per_machine)
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()


def _spawned_worker(local_rank: int, machine_rank: int, processes_per_machine: int, world_size: int, *rest) -> None:
    global_rank = machine_rank * processes_per_machine + local_rank
    _init_and_run(global_rank, local_rank, world_size, processes_per_machine, *rest)


def launch(
    main_func: Callable[..., Any],
    num_processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: tuple = (),
    use_cuda: bool | None = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in every process of the job (NCCL on GPUs, gloo on CPU)."""
    if use_cuda is None:
        use_cuda = torch.cuda.is_available()
    if started_by_torchrun():
        _init_and_run(
            int(os.environ["RANK"]),
            int(os.environ["LOCAL_RANK"]),
            int(os.environ["WORLD_SIZE"]),
            int(os.environ["LOCAL_WORLD_SIZE"]),
            "env://",
            use_cuda,
            main_func,
            args,
            timeout,
        )
        return
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise ValueError("--dist-url must name machine 0 (tcp://HOST:PORT) for multi-machine jobs")
        dist_url = f"tcp://127.0.0.1:{free_local_port()}"
    mp.spawn(
        _spawned_worker,
        nprocs=num_processes_per_machine,
        args=(machine_rank, num_processes_per_machine, world_size, dist_url, use_cuda, main_func, args, timeout),
        daemon=False,
    )
