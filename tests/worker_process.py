"""A real Celery worker process for the tests (never eager mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from app.paths import PROJECT_ROOT
from app.redis_conn import CHECKER_HEARTBEAT_PREFIX, WORKER_HEARTBEAT_PREFIX, connect


class WorkerProcess:
    def __init__(
        self,
        *,
        name: str,
        concurrency: int = 4,
        env: dict[str, str] | None = None,
        queues: list[str] | None = None,
        pool: str | None = None,
    ):
        self.name = name
        self.concurrency = concurrency
        # As `switchboard worker` runs them: threads for runs, processes for checks.
        self.pool = pool or ("prefork" if queues == ["checks"] else "threads")
        self.queues = queues  # None: the default queue and every endpoint's (a run worker)
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> WorkerProcess:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "--app", "workers.celery_app", "worker",
                "--pool", self.pool, "--concurrency", str(self.concurrency),
                "--loglevel", "WARNING",
                "--hostname", f"{self.name}@%h", "--without-mingle", "--without-gossip",
                *(["--queues", ",".join(self.queues)] if self.queues else []),
            ],
            cwd=PROJECT_ROOT, env=self.env,
        )  # fmt: skip
        redis = connect(self.env["SWITCHBOARD_REDIS_URL"])
        checker = self.queues == ["checks"]
        prefix = CHECKER_HEARTBEAT_PREFIX if checker else WORKER_HEARTBEAT_PREFIX
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(
                key.split(":", 2)[-1].startswith(f"{self.name}@")
                for key in redis.scan_iter(match=f"{prefix}*")
            ):
                return self
            assert self.process.poll() is None, "the worker exited at start"
            time.sleep(0.1)
        raise AssertionError("the worker sent no heartbeat")

    def children(self) -> list[psutil.Process]:
        assert self.process is not None
        return psutil.Process(self.process.pid).children(recursive=True)

    def kill(self) -> None:
        """SIGKILL the worker and its pool: a crash, not a shutdown."""
        assert self.process is not None
        for child in self.children():
            child.send_signal(signal.SIGKILL)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
