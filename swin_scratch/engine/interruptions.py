"""What ends a training run early on a cluster: preemption signals and a training process that dies.

Preemption (SIGTERM, or SIGINT / Ctrl-C): the signal handler only raises a flag. After the current
iteration the ranks agree whether any of them was signalled (a tiny collective every iteration),
so all stop at the same iteration; rank 0 writes one checkpoint there and the run exits 0 with one
line that names the checkpoint and the resume command. A second signal while the checkpoint is
written only raises the flag again, so it cannot cut the save short.

A lost rank: a collective failing because a peer's connection closed is turned into
:class:`LostRankError`, reported as one line by the process that noticed it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import sys
from types import FrameType
from typing import Iterator, Optional

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

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is None:
            logger.warning("%s received: stopping after the current iteration and saving a checkpoint", name)
        self.signal_name = self.signal_name or name

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def any_rank_requested_stop(request: StopRequest) -> Optional[str]:
    """The signal name if this or any other rank was signalled (all ranks get the same answer)."""
    names = comm.all_gather(request.signal_name) if comm.get_world_size() > 1 else [request.signal_name]
    return next((name for name in names if name), None)


class StopOnSignal(HookBase):
    """After each iteration: if any rank was signalled, checkpoint this iteration and stop."""

    def __init__(self, request: StopRequest):
        self._request = request

    def after_step(self) -> None:
        signal_name = any_rank_requested_stop(self._request)
        if signal_name is None or self.trainer.iter + 1 >= self.trainer.max_iter:
            return  # no stop, or the run is complete anyway (model_final is written)
        iteration = self.trainer.iter
        checkpointer = self.trainer.checkpointer
        name = f"model_{iteration:07d}"
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
