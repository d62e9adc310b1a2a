"""What ``switchboard up`` prints: one line format for every process, prefixed with its part.

Every Python process of the stack (the CLI itself, uvicorn, the Celery worker) logs with
:data:`LOG_FORMAT`; the supervisor reads each child's output and prints it as
``HH:MM:SS part   | line``, so the web app, the worker, the model and Redis read alike.

Quiet by default: ``SWITCHBOARD_LOG_LEVEL=warning`` shows warnings and errors, plus one line per
finished run (the ``switchboard.runs`` logger always speaks at INFO); ``info`` or ``debug`` adds
request logs and more.

``SWITCHBOARD_LOG_FORMAT=json`` (app/logs.py) makes every line one JSON object instead: the
children's lines are relayed as they are with ``"process"`` added (or wrapped, for a child that
does not write JSON, such as Redis), and what ``up`` itself says is JSON too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO

from app import logs

LOG_FORMAT = logs.TEXT_FORMAT
RUNS_LOGGER = "switchboard.runs"
PART_WIDTH = 7  # "checker"

# Python warnings a newcomer cannot act on. Celery warns that the worker runs as root (in a
# container, or a dev box used as root); the warning is about pickle, which Switchboard never
# accepts (json only), so there is nothing to fix. Filtered by message, in the worker's env.
QUIET_WARNINGS = "ignore:You're running the worker with superuser privileges"


_format: logs.LogFormat = "text"


def configure_logging(level: str, log_format: logs.LogFormat | None = None) -> None:
    """Log to stderr in the stack's one format (``SWITCHBOARD_LOG_FORMAT`` unless given); one
    line per run even when quiet."""
    global _format
    if log_format is None:
        from app.config import get_settings

        log_format = get_settings().log_format
    _format = log_format
    logs.configure(level, log_format)
    logging.getLogger(RUNS_LOGGER).setLevel(logging.INFO)
    # Alembic narrates every step at INFO; a person only needs to hear when something is wrong.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def uvicorn_log_config(level: str, log_format: logs.LogFormat = "text") -> dict[str, object]:
    """uvicorn's loggers in the same format (its default has its own, coloured one)."""
    plain: dict[str, str] = (
        {"()": "app.logs.json_formatter"} if log_format == "json" else {"format": LOG_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": plain},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            RUNS_LOGGER: {"level": "INFO"},
        },
    }


def prefixed(part: str, line: str) -> str:
    """One console line: the time, the part, then what the process said (with JSON logs, the
    line as one JSON object that names the part as ``process``)."""
    if _format == "json":
        return _json_relayed(part, line.rstrip())
    return f"{time.strftime('%H:%M:%S')} {part:<{PART_WIDTH}} | {line.rstrip()}"


def _json_relayed(part: str, line: str) -> str:
    try:
        fields = json.loads(line)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        fields = {"time": datetime.now(UTC).isoformat(), "level": "info", "event": line}
    return logs.json_line(**{**fields, "process": part})


def say(part: str, text: str, stream: IO[str] | None = None) -> None:
    print(prefixed(part, text), file=stream or sys.stdout, flush=True)


# A line of a process that does not use Python's logging, in the stack's format (None: drop it).
Translate = Callable[[str], str | None] | None


def relay(
    part: str, source: IO[bytes], stream: IO[str] | None = None, *, translate: Translate = None
) -> threading.Thread:
    """Copy a child's output, line by line, prefixed with its part (a daemon thread)."""

    def copy() -> None:
        for raw in iter(source.readline, b""):
            line: str | None = raw.decode("utf-8", errors="replace").rstrip()
            if line and translate is not None:
                line = translate(line)
            if line:
                say(part, line, stream)
        source.close()

    thread = threading.Thread(target=copy, name=f"relay-{part}", daemon=True)
    thread.start()
    return thread


# redis-server's own log line: "pid:role day mon year time level message", or from its signal
# handler "pid:signal-handler (time) message".
REDIS_LINE = re.compile(
    r"^\d+:(?:[A-Z] \d{1,2} \w{3} \d{4} [\d:.]+ (?P<level>[.*#-])|signal-handler \(\d+\)) "
    r"(?P<message>.*)$"
)
REDIS_LEVELS = {".": "DEBUG", "-": "INFO", "*": "INFO", "#": "WARNING", None: "WARNING"}
# Redis 6 says these at WARNING on every start and stop: its banner, the stop that `up` asked
# for, and the host's settings, which Switchboard's own Redis does not need acted on (it keeps
# no RDB snapshots, so overcommit does not matter, and its command line is its configuration).
REDIS_NOISE = (
    "Redis is starting",
    "Redis version=",
    "Configuration loaded",
    "Server initialized",
    "Memory overcommit must be enabled",
    "no config file specified",
    "scheduling shutdown",
    "User requested shutdown",
    "ready to exit, bye bye",
)


def redis_line(line: str) -> str | None:
    """A redis-server log line in the stack's format; the routine ones dropped."""
    found = REDIS_LINE.match(line)
    if found is None:
        return line
    message = found["message"]
    if any(noise in message for noise in REDIS_NOISE):
        return None
    return f"{REDIS_LEVELS[found['level']]} redis: {message}"


# llama-server's lines with --log-prefix: "I …", "W …", "E …", "D …" (after an optional
# timestamp), and what level each is.
LLAMA_LINE = re.compile(r"^(?:[\d.]+ )?(?P<level>[IWED]) (?P<message>.*)$")
LLAMA_LEVELS = {"D": logging.DEBUG, "I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR}
# Warnings llama-server gives about the bundled model's GGUF at every load, which nobody running
# Switchboard can act on (the token's type is corrected as it loads).
LLAMA_NOISE = ("control-looking token",)


def llama_filter(level: str) -> Callable[[str], str | None]:
    """llama-server's lines in the stack's format, at the console's level or above (it narrates
    every request and every tensor at INFO; its whole log stays in llama-server.log)."""
    threshold = logging.getLevelName(level.upper())

    def translate(line: str) -> str | None:
        found = LLAMA_LINE.match(line)
        numeric = LLAMA_LEVELS[found["level"]] if found else logging.INFO
        if numeric < threshold or any(noise in line for noise in LLAMA_NOISE):
            return None
        message = found["message"].strip() if found else line
        return f"{logging.getLevelName(numeric)} llama-server: {message}" if message else None

    return translate
