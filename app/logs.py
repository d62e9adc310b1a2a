"""Log lines as text or as JSON, and which run a line is about.

``SWITCHBOARD_LOG_FORMAT=json`` makes every Python process of the stack write one JSON object
per line (structlog's formatter behind the standard ``logging`` calls the code makes): the
time, level, logger, pid, the message as ``event``, an exception as one string, and — on every
line about a run — ``run_id``, ``task_id`` and ``workspace_id``. The worker binds them where it
starts carrying out a run (:func:`bind_run`, context variables, so lines of other threads and
other runs do not get them). ``text`` keeps the stack's one human line format.

This module is on the request path and the worker's (the engine calls :func:`bind_run`), so it
imports nothing of ``app.runtime``; ``app.runtime.console`` builds on it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections import OrderedDict
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from structlog.typing import EventDict

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
RUN_KEYS = ("run_id", "task_id", "workspace_id")
# Lines a run's helper threads log ("run %s: heartbeat failed…") do not share the context of
# the thread that bound it: the run's task and workspace are remembered for them, per process.
_REMEMBERED_RUNS = 256
_known_runs: OrderedDict[int, dict[str, int]] = OrderedDict()
_RUN_MESSAGE = re.compile(r"run (\d+)\b")


def _configured_format() -> LogFormat:
    from app.config import get_settings

    return get_settings().log_format


def bind_run(run_id: int) -> None:
    """Mark what this thread logs from now on as about run ``run_id`` (forgetting any run
    bound before). With JSON logs its task and workspace are read once, from SQL."""
    structlog.contextvars.clear_contextvars()
    ids = {"run_id": run_id}
    if _configured_format() == "json":
        ids.update(_task_and_workspace(run_id))
        _remember(ids)
    structlog.contextvars.bind_contextvars(**ids)


def unbind_run() -> None:
    """What this thread logs next is about no run (a new Celery task begins)."""
    structlog.contextvars.clear_contextvars()


def _task_and_workspace(run_id: int) -> dict[str, int]:
    from app.db import get_engine
    from app.models import Run, Task

    query = (
        sa.select(Task.id, Task.workspace_id)  # type: ignore[call-overload]
        .join(Run, Run.task_id == Task.id)  # type: ignore[arg-type]
        .where(Run.id == run_id)
    )
    with get_engine().connect() as connection:
        row = connection.execute(query).first()
    return {} if row is None else {"task_id": row[0], "workspace_id": row[1]}


def _remember(ids: dict[str, int]) -> None:
    _known_runs[ids["run_id"]] = ids
    _known_runs.move_to_end(ids["run_id"])
    while len(_known_runs) > _REMEMBERED_RUNS:
        _known_runs.popitem(last=False)


def _run_named_in_message(_: Any, __: str, event: EventDict) -> EventDict:
    """A line of the engine's "run %s: …" form with no run bound (a helper thread, or the
    web queueing it) carries that run's id, and its task and workspace when known here."""
    record = event.get("_record")
    if "run_id" in event or record is None or not str(record.msg).startswith("run %s"):
        return event
    # The formatter has emptied the record's arguments by now: the id is read from the text.
    if found := _RUN_MESSAGE.match(str(event.get("event", ""))):
        run_id = int(found.group(1))
        event.update(_known_runs.get(run_id, {"run_id": run_id}))
    return event


def _add_pid(_: Any, __: str, event: EventDict) -> EventDict:
    event["pid"] = os.getpid()
    return event


def json_formatter() -> logging.Formatter:
    """One JSON object per line for every record (also usable from ``logging.config``)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            _add_pid,
            _run_named_in_message,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def formatter(log_format: LogFormat) -> logging.Formatter:
    return json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: LogFormat) -> None:
    """The root logger writes ``log_format`` lines to stderr at ``level``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # A Python warning (Celery's about running as root, a deprecation) would otherwise go to
    # stderr as two lines of text of its own.
    logging.captureWarnings(log_format == "json")


def json_line(**fields: Any) -> str:
    """One JSON log line for something a process says outside ``logging`` (the CLI's own
    messages, or a non-Python child's line relayed by ``switchboard up``)."""
    return json.dumps(fields, ensure_ascii=False, default=str)
