"""The demo's training time: read from detectron2's log.txt, printed after the machine line
(tools/training_speed.py)."""
from __future__ import annotations

import datetime

import pytest

from helpers.tools import load_tool
from swin_scratch.benchmark.machine import Machine
from swin_scratch.benchmark.training_speed import TrainingLogError, parse_training_speed, read_training_speed

MACHINE = Machine("Test CPU", ("AVX2",), 1, "2.14.1", {"fp32": 90.0, "bf16": 45.0})


def session(start: int, iterations: int, seconds_per_iteration: float, total: str) -> str:
    """The lines detectron2 (v0.6 and upstream) logs for one training session."""
    speed = str(datetime.timedelta(seconds=int(iterations * seconds_per_iteration)))
    return (
        f"[12/03 12:15:14] d2.engine.train_loop INFO: Starting training from iteration {start}\n"
        "[12/03 12:15:22] d2.utils.events INFO:  eta: 0:13:33  iter: 19  total_loss: 2.483\n"
        f"[12/03 12:30:21] d2.engine.hooks INFO: Overall training speed: {iterations} iterations in {speed} "
        f"({seconds_per_iteration:.4f} s / it)\n"
        f"[12/03 12:30:21] d2.engine.hooks INFO: Total training time: {total} (0:01:03 on hooks)\n"
    )


def test_one_session_gives_iterations_per_second_and_the_wall_time():
    speed = parse_training_speed(session(0, 1997, 0.4543, "0:16:10"))
    assert (speed.iterations, speed.total_seconds) == (1997, 970.0)
    assert speed.iteration_seconds == pytest.approx(1997 * 0.4543)  # to the logged rate, not whole seconds
    assert speed.iterations_per_second == pytest.approx(1 / 0.4543)
    assert speed.line().startswith("Training: 1997 iterations in 15 min 07 s (2.20 it/s, 0.454 s/it")
    assert "total training time 16 min 10 s" in speed.line() and "resumed" not in speed.line()


def test_a_resumed_run_adds_its_sessions_and_a_resume_of_a_finished_run_adds_nothing():
    log = (session(0, 997, 0.4, "0:07:30") + session(1000, 997, 0.5, "0:08:40")
           + session(2000, 0, 0.1, "0:00:05").replace("Overall training speed", "(nothing trained)"))
    speed = parse_training_speed(log)
    assert (speed.iterations, speed.total_seconds, speed.sessions) == (1994, 970, 2)
    assert speed.iteration_seconds == pytest.approx(997 * 0.9)
    assert "over 2 sessions (resumed)" in speed.line()


def test_a_run_started_again_from_iteration_zero_replaces_the_earlier_one_in_the_same_log():
    earlier = session(0, 5000, 20.0, "1 day, 4:00:00")
    assert parse_training_speed(earlier).total_seconds == 28 * 3600  # "1 day, 4:00:00"
    speed = parse_training_speed(earlier + session(0, 97, 0.6, "0:01:10"))
    assert (speed.iterations, speed.total_seconds) == (97, 70)


def test_a_killed_session_is_reported_as_not_counted():
    killed = "[12/03] d2.engine.train_loop INFO: Starting training from iteration 1000\n"
    log = session(0, 997, 0.4, "0:07:30") + killed
    speed = parse_training_speed(log)
    assert speed.unfinished_sessions == 1 and "1 session(s) ended without a record" in speed.line()


def test_a_folder_without_a_finished_training_is_a_one_line_error(tmp_path):
    with pytest.raises(TrainingLogError, match="log.txt: no such file"):
        read_training_speed(tmp_path)
    (tmp_path / "log.txt").write_text("[12/03] d2.engine.train_loop INFO: Starting training from iteration 0\n")
    with pytest.raises(TrainingLogError, match="no training session has finished"):
        read_training_speed(tmp_path)


def test_the_tool_prints_the_machine_line_then_the_training_time(tmp_path, capsys, monkeypatch):
    tool = load_tool("training_speed")
    monkeypatch.setattr(tool, "describe_machine", lambda threads=None: MACHINE)
    (tmp_path / "log.txt").write_text(session(0, 1997, 0.4543, "0:16:10"))
    assert tool.main([str(tmp_path)]) == 0
    machine_line, training_line = capsys.readouterr().out.strip().splitlines()
    assert machine_line == MACHINE.line() and "Test CPU; ISA: AVX2; 1 threads" in machine_line
    assert training_line.startswith("Training: 1997 iterations in 15 min 07 s (2.20 it/s")


def test_the_tool_reports_a_missing_log_in_one_line(tmp_path, capsys):
    assert load_tool("training_speed").main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "log.txt" in err
