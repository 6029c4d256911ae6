"""The stop-signal flag and the resume command line (see tests/engine/test_train_resume.py and
tests/engine/test_distributed.py for whole runs)."""
from __future__ import annotations

import os
import signal

from swin_scratch.engine.interruptions import StopRequest, resume_command


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
