import threading

import pytest

from stm.app.jobs import JobRunner
from stm.errors import StmError


def _frames(count, gate: threading.Event | None = None, fail_at=None, closed=None):
    try:
        for index in range(count):
            if gate is not None:
                gate.wait(5)
            if index == fail_at:
                raise StmError("frame 3: unreadable image")
            yield index
    finally:
        if closed is not None:
            closed.set()


def test_a_job_reports_each_finished_frame_once_through_the_cursor():
    runner = JobRunner()
    job = runner.start("propagation", 5, _frames(5))
    runner.wait(5)
    first = runner.status(0)
    assert first["state"] == "done" and first["updated"] == [0, 1, 2, 3, 4] and first["cursor"] == 5
    assert first["id"] == job.id and first["total"] == 5 and first["first_frame_seconds"] is not None
    assert runner.status(3)["updated"] == [3, 4] and runner.status(5)["updated"] == []


def test_cancel_stops_after_the_frame_in_progress_and_closes_the_work():
    gate, closed = threading.Event(), threading.Event()
    runner = JobRunner()
    runner.start("propagation", 100, _frames(100, gate, closed=closed))
    assert runner.cancel()
    gate.set()
    runner.wait(5)
    status = runner.status()
    assert status["state"] == "cancelled" and status["done"] == 1 and closed.is_set()
    assert not runner.cancel()  # nothing runs any more


def test_one_job_at_a_time():
    gate = threading.Event()
    runner = JobRunner()
    runner.start("propagation", 3, _frames(3, gate))
    with pytest.raises(StmError, match="already running"):
        runner.start("propagation", 3, _frames(3))
    gate.set()
    runner.wait(5)
    runner.start("propagation", 3, _frames(3))  # the next one may start
    runner.wait(5)
    assert runner.status()["state"] == "done"


def test_a_failure_keeps_the_finished_frames_and_gives_one_message():
    runner = JobRunner()
    runner.start("propagation", 5, _frames(5, fail_at=3))
    runner.wait(5)
    status = runner.status()
    assert status["state"] == "failed" and status["updated"] == [0, 1, 2]
    assert status["error"] == "frame 3: unreadable image"
