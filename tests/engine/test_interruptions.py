"""The stop-signal flag, the resume command line, and what keeps a stop signal sent to a whole process
group from killing loader workers or starting ranks (see tests/engine/test_preemption.py,
tests/engine/test_train_resume.py and tests/engine/test_distributed.py for whole runs)."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from swin_scratch.engine.interruptions import (
    StopRequest,
    leave_stop_signals_to_the_rank,
    leaving_stop_signals_to_the_rank,
    resume_command,
    stop_signals_deferred,
)
from swin_scratch.engine.train_loader import StopSignalSafeDataLoader


def test_sigint_and_sigterm_only_raise_the_flag_while_installed_and_handlers_come_back():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    request = StopRequest()
    with request.installed():
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: training finishes the iteration
        assert request.signal_name == "SIGINT"
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing
        assert request.signal_name == "SIGINT"
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_resume_command_puts_resume_before_the_key_value_overrides():
    argv = ["tools/train_net.py", "--config", "swin_shapes.yaml", "OUTPUT_DIR", "out dir"]
    assert resume_command(argv) == "python tools/train_net.py --resume --config swin_shapes.yaml OUTPUT_DIR 'out dir'"
    assert resume_command(resume_command(argv).split()[1:2] + ["--resume"]).count("--resume") == 1


def test_resume_command_of_the_console_script_names_the_command():
    argv = ["/some/venv/bin/swin-train", "--config", "swin_shapes.yaml"]
    assert resume_command(argv) == "swin-train --resume --config swin_shapes.yaml"


def _sigterm_is_blocked_in(status_text: str) -> bool:
    """Whether /proc/<pid>/status text says SIGTERM is blocked (SigBlk is a hex mask, bit n-1 = signal n)."""
    mask = next(line.split()[1] for line in status_text.splitlines() if line.startswith("SigBlk:"))
    return bool(int(mask, 16) >> (signal.SIGTERM - 1) & 1)


def test_processes_started_while_stop_signals_are_deferred_start_with_them_blocked():
    # a spawned process too: multiprocessing's resource tracker would otherwise unblock them here
    context = multiprocessing.get_context("spawn")
    with stop_signals_deferred():
        child = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True, check=True)
        queue = context.SimpleQueue()
        process = context.Process(target=_report_status, args=(queue,))
        process.start()
        spawned = queue.get()
        process.join()
    assert _sigterm_is_blocked_in(child.stdout)
    assert _sigterm_is_blocked_in(spawned)
    assert not _sigterm_is_blocked_in(Path("/proc/self/status").read_text())  # the previous mask is back


def _report_status(queue) -> None:
    queue.put(Path("/proc/self/status").read_text())


def test_a_signal_deferred_during_a_block_raises_the_flag_when_the_block_ends():
    request = StopRequest()
    with request.installed():
        with stop_signals_deferred():
            # to this thread: a signal to the process may go to another thread, which does not block it
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            assert request.signal_name is None  # pending
        assert request.signal_name == "SIGTERM"


def test_the_handler_does_nothing_in_a_forked_child_such_as_a_loader_worker():
    request = StopRequest()
    with request.installed():
        pid = os.fork()
        if pid == 0:  # the child: the handler it inherited must neither stop it nor raise its flag
            os.kill(os.getpid(), signal.SIGTERM)
            os._exit(0 if request.signal_name is None else 3)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


class _Numbers(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 40

    def __getitem__(self, index: int) -> int:
        time.sleep(0.01)
        return index


def test_loader_workers_ignore_stop_signals_and_keep_serving_batches():
    loader = torch.utils.data.DataLoader(_Numbers(), batch_size=4, num_workers=2,
                                         worker_init_fn=leave_stop_signals_to_the_rank)
    iterator = iter(loader)
    first = next(iterator)
    for worker in iterator._workers:
        os.kill(worker.pid, signal.SIGTERM)
        os.kill(worker.pid, signal.SIGINT)
    rest = list(iterator)
    assert torch.cat([first, *rest]).tolist() == list(range(40))


def test_the_training_loader_starts_its_workers_with_stop_signals_blocked():
    # (then its worker_init_fn ignores them and unblocks; without one they stay blocked)
    iterator = iter(StopSignalSafeDataLoader(_Numbers(), batch_size=4, num_workers=1))
    try:
        assert _sigterm_is_blocked_in(Path(f"/proc/{iterator._workers[0].pid}/status").read_text())
        assert not _sigterm_is_blocked_in(Path("/proc/self/status").read_text())
    finally:
        iterator._shutdown_workers()


def test_a_detectron2_worker_init_fn_still_runs_after_the_stop_signals_are_left_to_the_rank():
    calls = []
    composed = leaving_stop_signals_to_the_rank(calls.append)
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        composed(3)
        assert calls == [3]
        assert signal.getsignal(signal.SIGTERM) == signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert leaving_stop_signals_to_the_rank(None) is leave_stop_signals_to_the_rank


KEEPS_A_LOADER_ITERATOR_ALIVE_AT_EXIT = """
import time, torch
from swin_scratch.engine.interruptions import leave_stop_signals_to_the_rank
from swin_scratch.engine.train_loader import StopSignalSafeDataLoader

class Numbers(torch.utils.data.Dataset):
    def __len__(self):
        return 1000
    def __getitem__(self, index):
        return index

loader = StopSignalSafeDataLoader(Numbers(), batch_size=2, num_workers=2, worker_init_fn=leave_stop_signals_to_the_rank)
iterator = iter(loader)  # still referenced when the interpreter exits, as a trainer in a reference cycle is
next(iterator)
print("exiting", flush=True)
"""


def test_workers_that_ignore_sigterm_do_not_hold_up_the_exit(tmp_path):
    # multiprocessing's exit handler stops daemonic children with SIGTERM and waits for them
    script = tmp_path / "exit_with_live_workers.py"
    script.write_text(KEEPS_A_LOADER_ITERATOR_ALIVE_AT_EXIT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0 and "exiting" in result.stdout, result.stderr[-2000:]
