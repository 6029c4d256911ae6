"""What ends a training run early on a cluster: preemption signals and a training process that dies.

Preemption (SIGTERM, or SIGINT / Ctrl-C): the signal handler only raises a flag. After the current
iteration the ranks agree whether any of them was signalled (a tiny collective every iteration),
so all stop at the same iteration; rank 0 writes one checkpoint there and the run exits 0 with one
line that names the checkpoint and the resume command. A second signal while the checkpoint is
written only raises the flag again, so it cannot cut the save short.

A scheduler (scancel, timeout, Ctrl-C in a terminal) signals the whole process group at once: every
rank, the launcher and every data-loader worker. The stop is the ranks' business: loader workers
ignore SIGTERM/SIGINT (:func:`leave_stop_signals_to_the_rank`, their ``worker_init_fn``); before
that runs, a forked worker still has its rank's handler, which does nothing outside the rank
(:meth:`StopRequest._handle`). Otherwise a worker killed by the signal would turn the stop into
the crash "DataLoader worker (pid ...) is killed by signal: Terminated". The ``--num-gpus``
launcher starts its ranks with the stop signals blocked (:func:`stop_signals_deferred`); a rank
unblocks them once its handler is in place, so a signal during its start-up is deferred, not fatal.

A lost rank: a collective failing because a peer's connection closed is turned into
:class:`LostRankError`, reported as one line by the process that noticed it.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing.resource_tracker
import os
import re
import shlex
import signal
import sys
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

logger = logging.getLogger("swin_scratch")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# What gloo (and NCCL) say when a peer process is gone.
LOST_PEER_MESSAGES = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "remote worker")


class TrainingStopped(BaseException):
    """Raised out of detectron2's training loop after the preemption checkpoint is written.

    A ``BaseException`` so detectron2's loop does not log it as a crash; ``after_train`` hooks still run.
    """

    def __init__(self, iteration: int, checkpoint: str, signal_name: str):
        super().__init__(iteration, checkpoint, signal_name)
        self.iteration, self.checkpoint, self.signal_name = iteration, checkpoint, signal_name


class LostRankError(RuntimeError):
    """A training process of this job died; the others cannot go on. ``exit_status`` is for the launcher."""

    def __init__(self, message: str, exit_status: int = 1):
        super().__init__(message)
        self.exit_status = exit_status


class StopRequest:
    """The flag a stop signal raises; :meth:`installed` puts the handlers in place for a block."""

    def __init__(self) -> None:
        self.signal_name: Optional[str] = None
        self._owner_pid: Optional[int] = None

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if os.getpid() != self._owner_pid:
            return  # a forked data-loader worker before its worker_init_fn: the rank handles the stop
        name = signal.Signals(signum).name
        if self.signal_name is None:
            logger.warning("%s received: stopping after the current iteration and saving a checkpoint", name)
        self.signal_name = self.signal_name or name

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        """The handlers for a block (re-entrant); signals deferred by the launcher arrive now."""
        self._owner_pid = os.getpid()
        previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        deliver_deferred_stop_signals()
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Block SIGTERM/SIGINT in this thread for a block, then put the previous mask back.

    Processes started in the block inherit the blocked mask (through fork and exec), so a stop
    signal that reaches them while they start up stays pending until they ignore it (loader
    workers) or install their handler (ranks), instead of killing them. (This process may still
    take a signal meanwhile, on one of its other threads; its handler only raises a flag.)

    multiprocessing starts its resource tracker with the same trick the first time a process is
    spawned, and unblocks both signals afterwards, which would undo this block: it is started first.
    """
    multiprocessing.resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def deliver_deferred_stop_signals() -> None:
    """Unblock SIGTERM/SIGINT: a pending one is handled now by whatever handler is in place.

    A rank started under :func:`stop_signals_deferred` must call this (``StopRequest.installed``
    does) before long work that has no stop handler, such as ``--eval-only``, or it would ignore them.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def with_stop_signals_deferred(function: Callable[[], Any]) -> Callable[[], Any]:
    """``function`` run under :func:`stop_signals_deferred`: for evaluation during training, whose
    loader workers start in it; training stops after this iteration as it would have anyway."""

    def deferred() -> Any:
        with stop_signals_deferred():
            return function()

    return deferred


def leave_stop_signals_to_the_rank(worker_id: int = 0) -> None:
    """A data-loader worker's ``worker_init_fn``: ignore SIGTERM/SIGINT (see the module docstring).

    The rank decides when to stop; the worker ends with the rank (its loader shuts it down, and
    torch's workers exit when their parent is gone). SIGKILL still ends it, as it should.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # also discards a pending one
    deliver_deferred_stop_signals()


def leaving_stop_signals_to_the_rank(worker_init_fn: Optional[Callable[[int], Any]]) -> Callable[[int], Any]:
    """``worker_init_fn`` preceded by :func:`leave_stop_signals_to_the_rank` (for loaders built by detectron2)."""
    if worker_init_fn is None or worker_init_fn is leave_stop_signals_to_the_rank:
        return leave_stop_signals_to_the_rank
    return _WorkerInitLeavingStopSignals(worker_init_fn)


class _WorkerInitLeavingStopSignals:
    """A picklable composition (spawned workers get their ``worker_init_fn`` pickled)."""

    def __init__(self, worker_init_fn: Callable[[int], Any]):
        self.worker_init_fn = worker_init_fn

    def __call__(self, worker_id: int) -> Any:
        leave_stop_signals_to_the_rank(worker_id)
        return self.worker_init_fn(worker_id)


def any_rank_requested_stop(request: StopRequest) -> Optional[str]:
    """The signal name if this or any other rank was signalled (all ranks get the same answer)."""
    names = comm.all_gather(request.signal_name) if comm.get_world_size() > 1 else [request.signal_name]
    return next((name for name in names if name), None)


class StopOnSignal(HookBase):
    """After each iteration: if any rank was signalled, checkpoint this iteration and stop.

    ``before_save(trainer)`` runs on every rank just before the checkpoint (for collectives that
    gather per-rank state into it).
    """

    def __init__(self, request: StopRequest, before_save: Callable[[Any], None] = lambda trainer: None):
        self._request = request
        self._before_save = before_save

    def after_step(self) -> None:
        signal_name = any_rank_requested_stop(self._request)
        if signal_name is None or self.trainer.iter + 1 >= self.trainer.max_iter:
            return  # no stop, or the run is complete anyway (model_final is written)
        iteration = self.trainer.iter
        checkpointer = self.trainer.checkpointer
        name = f"model_{iteration:07d}"
        self._before_save(self.trainer)
        checkpointer.save(name, iteration=iteration)  # rank 0 only (the checkpointer's save_to_disk)
        comm.synchronize()
        raise TrainingStopped(iteration, f"{checkpointer.save_dir}/{name}.pth", signal_name)


def resume_command(argv: Optional[list[str]] = None) -> str:
    """The command line that started this run, with ``--resume`` (before the KEY VALUE overrides):
    ``python tools/train_net.py --resume ...`` for a script, ``swin-train --resume ...`` for the command."""
    argv = list(sys.argv if argv is None else argv)
    if "--resume" not in argv:
        argv.insert(1, "--resume")
    if argv[0].endswith(".py"):
        return "python " + shlex.join(argv)
    return shlex.join([os.path.basename(argv[0]), *argv[1:]])  # a console script, found on PATH


def is_lost_peer_error(err: BaseException) -> bool:
    return dist.is_initialized() and any(message in str(err) for message in LOST_PEER_MESSAGES)


def lost_rank_error(err: BaseException, iteration: int) -> LostRankError:
    rank, world_size = comm.get_rank(), comm.get_world_size()
    others = [str(other) for other in range(world_size) if other != rank]
    which = f"rank {others[0]}" if len(others) == 1 else f"one of ranks {', '.join(others)}"
    # gloo's message: "[file.cc:561] Connection closed by peer [host]:port. This is typically caused by ..."
    first_sentence = re.sub(r"^\[[^\]]*\]\s*", "", str(err)).split(". ")[0].splitlines()[0][:200] or type(err).__name__
    return LostRankError(
        f"rank {rank} lost {which} at iteration {iteration} ({first_sentence}); that process died, so this one "
        "stops too. Checkpoints already written are complete; restart with --resume"
    )
