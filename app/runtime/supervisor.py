"""Runs the processes of ``switchboard up`` and stops them all together.

Children get their own sessions, so Ctrl-C reaches only this process; it then stops them in
order (web first, so no new work arrives, Redis last) and waits for each.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from app.runtime import console

log = logging.getLogger("switchboard.up")

STOP_TIMEOUT_S = 15.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    def adopt(self, name: str, process: subprocess.Popen[bytes]) -> None:
        """Supervise a process started elsewhere (the embedded Redis)."""
        self.children.append(Child(name, process))

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        """Start a child; its output is printed line by line, prefixed with ``name``."""
        process = subprocess.Popen(
            list(argv), env={**os.environ, **env}, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        console.relay(name, process.stdout)
        self.adopt(name, process)

    def exited(self) -> Child | None:
        """A child that has exited, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def handle_signals(self) -> None:
        """Turn SIGTERM and SIGINT into KeyboardInterrupt, so that both stop everything."""
        signal.signal(signal.SIGTERM, self._on_signal)
        # Explicitly: a shell starting us in the background leaves SIGINT ignored, and Python
        # then keeps it ignored; Ctrl-C must always stop everything.
        signal.signal(signal.SIGINT, self._on_signal)

    def wait(self) -> int:
        """Block until Ctrl-C, SIGTERM or a child's death; then stop everything."""
        self.handle_signals()
        exit_code = 0
        try:
            while True:
                for child in self.children:
                    code = child.process.poll()
                    if code is not None:
                        console.say(
                            "up", f"{child.name} exited with status {code}; stopping.", sys.stderr
                        )
                        exit_code = 1
                        return exit_code
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.say("up", "stopping…", sys.stderr)
            return exit_code
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        """SIGTERM each child, newest first; SIGKILL what has not stopped in time."""
        if self._stopping:
            return
        self._stopping = True
        for child in reversed(self.children):
            process = child.process
            if process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", child.name, STOP_TIMEOUT_S)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
