"""Start one process per device: detectron2-style ``--num-gpus`` spawning, or join a job whose
processes someone else started: ``torchrun``'s, or SLURM's (``srun``, :mod:`.slurm`).

detectron2 v0.6's ``launch`` requires CUDA and NCCL; this one also runs CPU processes with gloo
(``--num-gpus N MODEL.DEVICE cpu`` means N CPU processes), and, when started by ``torchrun`` or as
a task of a SLURM job step, joins the process group that torchrun's rendezvous or SLURM's
environment describes instead of spawning.

When spawning, the launcher forwards SIGTERM/SIGINT to its processes (they stop at a checkpoint;
they start with those signals blocked, so one that arrives during their start-up is handled once
they can), and if one of them dies it stops the others and raises :class:`LostRankError` naming its rank.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from datetime import timedelta
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.utils import comm

from swin_scratch.compat.bridges import create_local_process_group
from swin_scratch.engine.interruptions import STOP_SIGNALS, LostRankError, stop_signals_deferred
from swin_scratch.engine.slurm import SlurmTask

DEFAULT_TIMEOUT = timedelta(minutes=30)
# After one process fails, how long the others get to notice and exit before they are terminated.
FAILURE_GRACE_S = 10.0


def started_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"))


def torchrun_restart_count() -> int:
    """How often torchrun has restarted this job's processes (``--max-restarts``); 0 on the first start."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def torchrun_store(timeout: timedelta) -> dist.Store:
    """torchrun's store (``env://``: MASTER_ADDR/MASTER_PORT; the agent's own store under torchrun),
    seen through a prefix of this restart.

    torchrun keeps one store for the whole job. After a restart the keys of the previous attempt
    (gloo's addresses of processes that are gone) are still in it, and a restarted rank that reads
    one before the new rank 0 overwrites it connects to a dead port: "Gloo connectFullMesh failed
    ... Connection refused". Each attempt gets its own key space instead.
    """
    store, _, _ = next(dist.rendezvous("env://", timeout=timeout))
    return dist.PrefixStore(f"swin_scratch/restart_{torchrun_restart_count()}", store)


def planned_world_size(num_processes_per_machine: int, num_machines: int = 1, slurm: SlurmTask | None = None) -> int:
    """How many processes :func:`launch` will run the job in: torchrun's count, SLURM's, or the flags'."""
    if started_by_torchrun():
        return int(os.environ["WORLD_SIZE"])
    if slurm is not None:
        return slurm.world_size
    return num_processes_per_machine * num_machines


def local_cuda_device(local_rank: int) -> int:
    """This process's GPU: its local rank among the machine's GPUs, or among those it can see when
    the scheduler gave each task its own (``srun --gpus-per-task 1``: one visible GPU, index 0)."""
    return local_rank % torch.cuda.device_count()


def default_backend(use_cuda: bool) -> str:
    return "nccl" if use_cuda else "gloo"


@contextlib.contextmanager
def local_rendezvous() -> Iterator[str]:
    """An ``init_method`` for the processes of one machine: a file in a fresh temp folder.

    (A free TCP port picked beforehand can be taken by another process before rank 0 listens on it.)
    """
    with tempfile.TemporaryDirectory(prefix="swin_scratch_rendezvous_") as folder:
        yield f"file://{folder}/rendezvous"


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
        torch.cuda.set_device(local_cuda_device(local_rank))
    # env:// (torchrun): its store, rebuilt per restart; otherwise a file:// or tcp:// rendezvous
    rendezvous = {"store": torchrun_store(timeout)} if init_method == "env://" else {"init_method": init_method}
    dist.init_process_group(
        backend=default_backend(use_cuda), world_size=world_size, rank=global_rank, timeout=timeout, **rendezvous
    )
    create_local_process_group(processes_per_machine)
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
    slurm: SlurmTask | None = None,
) -> None:
    """Run ``main_func(*args)`` in every process of the job (NCCL on GPUs, gloo on CPU).

    Under torchrun, or with ``slurm`` (this process is one task of a SLURM job step), this process
    is one of the job's and joins it; otherwise it spawns the processes of this machine.
    """
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
    if slurm is not None and slurm.world_size > 1:
        _init_and_run(slurm.rank, slurm.local_rank, slurm.world_size, slurm.tasks_per_machine, slurm.init_method,
                      use_cuda, main_func, args, timeout)
        return
    world_size = num_machines * num_processes_per_machine
    if world_size == 1 or slurm is not None:
        main_func(*args)
        return
    if dist_url in (None, "auto") and num_machines > 1:
        raise ValueError("--dist-url must name machine 0 (tcp://HOST:PORT) for multi-machine jobs")
    with contextlib.ExitStack() as stack:
        if dist_url in (None, "auto"):
            dist_url = stack.enter_context(local_rendezvous())
        processes: list = []
        with signals_forwarded_to(processes):
            with stop_signals_deferred():  # a signal while the ranks start up waits for their handlers
                context = mp.start_processes(
                    _spawned_worker,
                    nprocs=num_processes_per_machine,
                    args=(machine_rank, num_processes_per_machine, world_size, dist_url, use_cuda, main_func, args,
                          timeout),
                    join=False,
                    daemon=False,
                )
                processes.extend(context.processes)
            wait_for_processes(context, first_rank=machine_rank * num_processes_per_machine)


@contextlib.contextmanager
def signals_forwarded_to(processes: list) -> Iterator[None]:
    """While spawned processes run, SIGTERM/SIGINT sent to the launcher reach them too (they stop at a
    checkpoint, see :mod:`.interruptions`): a scheduler may signal only the process it started.

    ``processes`` may still be empty when this starts: a signal that arrives while they are being
    started is deferred (:func:`~.interruptions.stop_signals_deferred`) and forwarded once they exist.
    """

    def forward(signum: int, frame: Optional[FrameType]) -> None:
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_for_processes(context: mp.ProcessContext, first_rank: int) -> None:
    """Join the spawned processes; if one dies, stop the others and raise :class:`LostRankError` naming it."""
    try:
        while not context.join(grace_period=FAILURE_GRACE_S):
            pass
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as err:
        if isinstance(err, mp.ProcessRaisedException):  # an unexpected crash: its traceback matters
            print(str(err), file=sys.stderr, flush=True)
        raise lost_rank_error(context.processes[err.error_index], first_rank + err.error_index) from None


def lost_rank_error(process: Any, rank: int) -> LostRankError:
    """Name the process that failed first (torch reports the first exit it saw) and how it ended."""
    exitcode = process.exitcode or 1
    if exitcode < 0:
        how, status = f"was killed by {signal.Signals(-exitcode).name}", 1
    else:
        how, status = f"exited with status {exitcode} (its error is above)", exitcode
    return LostRankError(
        f"training process rank {rank} (pid {process.pid}) {how}; the other processes were stopped. "
        "Checkpoints already written are complete: restart the same command with --resume",
        exit_status=status,
    )
