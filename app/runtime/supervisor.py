"""Runs the processes of ``switchboard up``, starts again what exits, and stops them together.

Children get their own sessions, so Ctrl-C reaches only this process; it then stops them in
order (web first, so no new work arrives, Redis last) and waits for each.

A part that exits while the stack runs (a Celery worker that kombu ends when Redis refuses
connections, Redis itself, the model server) is started again after a pause that doubles with
each exit in a row (1 s, 2 s, 4 s … at most ``MAX_BACKOFF_S``) and starts over once it has
stayed up for ``STEADY_S``; each exit and start is said on the console. A part given no way to
start it again stops the stack when it exits. A job (``one_shot``: an install) ends by exiting;
its ``on_exit`` is told the status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from app.runtime import console

log = logging.getLogger("switchboard.up")

STOP_TIMEOUT_S = 15.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STEADY_S = 60.0  # up this long: its next exit is a first one again
POLL_S = 0.2

Starter = Callable[[], "subprocess.Popen[bytes]"]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes] | None
    start: Starter | None = None  # how to start it again; None: its exit stops the stack
    one_shot: bool = False
    on_exit: Callable[[int], None] | None = None
    started_at: float = field(default_factory=time.monotonic)
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None  # when an exited part is started again
    restarts: int = 0


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    failed: Child | None = None  # a part that exited and cannot be started again
    _stopping: bool = False
    _late: int = 0  # how many children at the head of the list are stopped late
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def adopt(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        *,
        start: Starter | None = None,
        one_shot: bool = False,
        on_exit: Callable[[int], None] | None = None,
        stop_late: bool = False,
    ) -> None:
        """Supervise a process started elsewhere (the embedded Redis, the model server); with
        ``start``, it is started again that way when it exits. ``stop_late``: stopped after
        every part that is not (what the workers use: they finish their runs first), the
        earliest adopted last. Safe from any thread: a process adopted while the stack stops
        is stopped at once."""
        with self._lock:
            stopping = self._stopping
            if not stopping:
                child = Child(name, process, start, one_shot, on_exit, backoff_s=FIRST_BACKOFF_S)
                if stop_late:
                    self.children.insert(self._late, child)
                    self._late += 1
                else:
                    self.children.append(child)
        if stopping:
            _stop(name, process, group=one_shot)

    def spawn(
        self, name: str, argv: Sequence[str], env: dict[str, str], *, restart: bool = True
    ) -> None:
        """Start a child whose output is printed line by line, prefixed with ``name``; started
        again when it exits unless ``restart`` is False."""

        def start() -> subprocess.Popen[bytes]:
            return start_relayed(name, argv, env)

        self.adopt(name, start(), start=start if restart else None)

    def exited(self) -> Child | None:
        """A part that exited and will not be started again (the stack then stops)."""
        return self.failed

    @property
    def stopping(self) -> bool:
        return self._stopping

    def tend(self) -> bool:
        """Look after the children once: start again the parts whose pause is over, note the
        ones that exited. False once a part that cannot be started again has exited."""
        if self.failed is not None:
            return False
        with self._lock:
            children = list(self.children)
        now = time.monotonic()
        for child in children:
            if self._stopping:
                return True
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start_again(child)
                continue
            code = child.process.poll() if child.process is not None else None
            if code is None:
                if now - child.started_at >= STEADY_S:
                    child.backoff_s = FIRST_BACKOFF_S
                continue
            if child.one_shot:
                with self._lock:
                    self.children.remove(child)
                if child.on_exit is not None:
                    child.on_exit(code)
                continue
            if child.start is None:
                console.say(child.name, f"exited with status {code}; stopping.", sys.stderr)
                self.failed = child
                return False
            child.restart_at = now + child.backoff_s
            console.say(
                child.name,
                f"exited with status {code}; starting it again in {child.backoff_s:g}s",
                sys.stderr,
            )
            child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)
        return True

    def _start_again(self, child: Child) -> None:
        assert child.start is not None
        child.restart_at = None
        try:
            process = child.start()
        except Exception as exc:  # e.g. Redis would not start: try again after a longer pause
            child.process = None
            child.restart_at = time.monotonic() + child.backoff_s
            console.say(
                child.name,
                f"could not start again ({exc}); trying in {child.backoff_s:g}s",
                sys.stderr,
            )
            child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)
            return
        with self._lock:
            stopping = self._stopping
            child.process = process
            child.started_at = time.monotonic()
            child.restarts += 1
        if stopping:
            _stop(child.name, process)
            return
        console.say(child.name, "started again")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def handle_signals(self) -> None:
        """Turn SIGTERM and SIGINT into KeyboardInterrupt, so that both stop everything."""
        signal.signal(signal.SIGTERM, self._on_signal)
        # Explicitly: a shell starting us in the background leaves SIGINT ignored, and Python
        # then keeps it ignored; Ctrl-C must always stop everything.
        signal.signal(signal.SIGINT, self._on_signal)

    def wait(self) -> int:
        """Block until Ctrl-C, SIGTERM or the exit of a part that cannot be started again,
        starting again meanwhile what exits; then stop everything."""
        self.handle_signals()
        try:
            while self.tend():
                time.sleep(POLL_S)
            return 1
        except KeyboardInterrupt:
            console.say("up", "stopping…", sys.stderr)
            return 0
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        """SIGTERM each child, newest first; SIGKILL what has not stopped in time."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            children = list(self.children)
        for child in reversed(children):
            if child.process is not None:
                _stop(child.name, child.process, group=child.one_shot)


def start_relayed(
    name: str, argv: Sequence[str], env: dict[str, str], *, translate: console.Translate = None
) -> subprocess.Popen[bytes]:
    """Start a process in its own session, its output relayed to the console as ``name``."""
    process = subprocess.Popen(
        list(argv), env={**os.environ, **env}, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    console.relay(name, process.stdout, translate=translate)
    return process


def _stop(name: str, process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGTERM (to its whole session with ``group``: a job's own children, such as the
    compilers of a build, stop with it), then SIGKILL to the session if it takes too long."""
    if process.poll() is not None:
        return
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0fs; killing it", name, STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
