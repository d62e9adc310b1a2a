"""What ``switchboard up`` prints: one line format for every process, prefixed with its part.

Every Python process of the stack (the CLI itself, uvicorn, the Celery worker) logs with
:data:`LOG_FORMAT`; the supervisor reads each child's output and prints it as
``HH:MM:SS part   | line``, so the web app, the worker, the model and Redis read alike.

Quiet by default: ``SWITCHBOARD_LOG_LEVEL=warning`` shows warnings and errors, plus one line per
finished run (the ``switchboard.runs`` logger always speaks at INFO); ``info`` or ``debug`` adds
request logs and more.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import IO

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
RUNS_LOGGER = "switchboard.runs"
PART_WIDTH = 6  # "worker"

# Python warnings a newcomer cannot act on. Celery warns that the worker runs as root (in a
# container, or a dev box used as root); the warning is about pickle, which Switchboard never
# accepts (json only), so there is nothing to fix. Filtered by message, in the worker's env.
QUIET_WARNINGS = "ignore:You're running the worker with superuser privileges"


def configure_logging(level: str) -> None:
    """Log to stderr in the stack's one format; one line per run even when quiet."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger(RUNS_LOGGER).setLevel(logging.INFO)
    # Alembic narrates every step at INFO; a person only needs to hear when something is wrong.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def uvicorn_log_config(level: str) -> dict[str, object]:
    """uvicorn's loggers in the same format (its default has its own, coloured one)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
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
    """One console line: the time, the part, then what the process said."""
    return f"{time.strftime('%H:%M:%S')} {part:<{PART_WIDTH}} | {line.rstrip()}"


def say(part: str, text: str, stream: IO[str] | None = None) -> None:
    print(prefixed(part, text), file=stream or sys.stdout, flush=True)


def relay(part: str, source: IO[bytes], stream: IO[str] | None = None) -> threading.Thread:
    """Copy a child's output, line by line, prefixed with its part (a daemon thread)."""

    def copy() -> None:
        for raw in iter(source.readline, b""):
            if raw.strip():
                say(part, raw.decode("utf-8", errors="replace"), stream)
        source.close()

    thread = threading.Thread(target=copy, name=f"relay-{part}", daemon=True)
    thread.start()
    return thread
