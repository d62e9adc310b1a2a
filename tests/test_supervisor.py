"""``switchboard up``'s supervisor with real processes: a part that exits is started again
after a pause that doubles, one that cannot be started again stops the stack, and stopping
leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from app.runtime import supervisor as supervision
from app.runtime.supervisor import Supervisor

EXITS_AT_ONCE = [sys.executable, "-c", "raise SystemExit(3)"]
STAYS_UP = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def quick_backoff(monkeypatch):
    monkeypatch.setattr(supervision, "FIRST_BACKOFF_S", 0.05)
    monkeypatch.setattr(supervision, "MAX_BACKOFF_S", 0.2)


def tend_until(stack: Supervisor, condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert stack.tend(), "the stack gave up"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_part_that_exits_is_started_again_after_pauses_that_double(quick_backoff, capsys):
    stack = Supervisor()
    stack.spawn("worker", EXITS_AT_ONCE, {})
    (child,) = stack.children
    try:
        tend_until(stack, lambda: child.restarts >= 4)
    finally:
        stack.stop_all()
    said = capsys.readouterr().err.splitlines()
    pauses = [line.split("starting it again in ")[1] for line in said if "starting it" in line]
    assert pauses[:4] == ["0.05s", "0.1s", "0.2s", "0.2s"], said  # doubles, up to the most
    assert all(" worker " in line and "exited with status 3" in line
               for line in said if "starting it" in line), said  # fmt: skip
    assert stack.exited() is None


def test_a_part_without_a_way_to_start_again_stops_the_stack(capsys):
    stack = Supervisor()
    stack.spawn("web", STAYS_UP, {})
    stack.spawn("beat", EXITS_AT_ONCE, {}, restart=False)
    web = stack.children[0].process
    try:
        deadline = time.monotonic() + 30
        while stack.tend():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert stack.exited() is stack.children[1]
    finally:
        stack.stop_all()
    assert web is not None and web.returncode is not None  # stopped with the rest
    assert re.search(r" beat +\| exited with status 3; stopping\.", capsys.readouterr().err)


def test_a_start_that_fails_is_tried_again_later(quick_backoff, capsys):
    attempts = []

    def start() -> subprocess.Popen[bytes]:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("Redis would not start")
        return subprocess.Popen(STAYS_UP, start_new_session=True)

    stack = Supervisor()
    stack.adopt("redis", subprocess.Popen(EXITS_AT_ONCE), start=start)
    (child,) = stack.children
    try:
        tend_until(stack, lambda: child.restarts == 1)
        assert child.process is not None and child.process.poll() is None
    finally:
        stack.stop_all()
    out, err = capsys.readouterr()
    assert err.count("could not start again (Redis would not start)") == 2, err
    assert re.search(r" redis +\| started again", out), out
    assert child.process.returncode is not None


def test_stopping_while_a_restart_waits_starts_nothing(quick_backoff):
    started = []

    def start() -> subprocess.Popen[bytes]:
        started.append(1)
        return subprocess.Popen(STAYS_UP, start_new_session=True)

    stack = Supervisor()
    stack.adopt("model", subprocess.Popen(EXITS_AT_ONCE), start=start)
    (child,) = stack.children
    tend_until(stack, lambda: child.restart_at is not None)
    stack.stop_all()
    child.restart_at = time.monotonic() - 1  # its pause is over
    assert stack.tend()
    assert started == []


def test_what_the_workers_use_is_stopped_after_them(monkeypatch):
    stopped: list[str] = []
    monkeypatch.setattr(
        supervision, "_stop", lambda name, process, group=False: stopped.append(name)
    )
    stack = Supervisor()
    stack.adopt("redis", subprocess.Popen(STAYS_UP), stop_late=True)
    stack.spawn("worker", STAYS_UP, {})
    stack.spawn("web", STAYS_UP, {})
    stack.adopt("model", subprocess.Popen(STAYS_UP), stop_late=True)  # joins later
    processes = [child.process for child in stack.children]
    stack.stop_all()
    for process in processes:
        process.kill()
        process.wait()
    assert stopped == ["web", "worker", "model", "redis"]
