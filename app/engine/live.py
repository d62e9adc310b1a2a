"""Live streams in Redis: one stream per run (tokens and state), one per workspace (activity).

A run's stream entries have a ``type`` — ``state``, ``reset``, ``token``, ``done`` or
``error`` — and a JSON ``data`` field. Their ids are the SSE ids, so a reconnecting browser
resumes exactly after the last entry it saw. ``reset`` means "a new attempt starts: drop the
text so far"; ``done`` and ``error`` end the stream, which then expires after a while (the text
stays in SQL).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import redis

from app.redis_conn import script

RUN_STREAM_TTL_S = 3600
WORKSPACE_STREAM_MAXLEN = 10_000
TERMINAL_TYPES = frozenset({"done", "error"})


def id_order(entry_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair (ms, sequence)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def run_stream(run_id: int) -> str:
    return f"sb:run:{run_id}"


def workspace_stream(workspace_id: int) -> str:
    return f"sb:workspace:{workspace_id}:events"


def cancel_flag(run_id: int) -> str:
    return f"sb:run:{run_id}:cancel"


def run_keys(run_id: int) -> list[str]:
    """Every Redis key that belongs to one run."""
    return [run_stream(run_id), cancel_flag(run_id)]


def workspace_keys(workspace_id: int, run_ids: Iterable[int]) -> list[str]:
    """Every Redis key of a workspace: its activity stream and its runs' keys."""
    return [workspace_stream(workspace_id), *(key for r in run_ids for key in run_keys(r))]


def forget(client: redis.Redis, keys: list[str]) -> None:
    """Delete the streams of deleted objects, so nothing of them is ever replayed."""
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


_STREAM_ID = re.compile(r"(0|[1-9][0-9]{0,19})(-(0|[1-9][0-9]{0,19}))?")
_MAX_PART = 2**64 - 1


def parse_stream_id(value: str | None) -> str | None:
    """``value`` if it is a valid Redis stream id (``ms`` or ``ms-seq``), else None."""
    if value is None:
        return None
    value = value.strip()
    match = _STREAM_ID.fullmatch(value)
    if match is None:
        return None
    parts = [int(match.group(1)), int(match.group(3) or 0)]
    return value if all(part <= _MAX_PART for part in parts) else None


def _entry(type_: str, data: dict[str, Any]) -> dict[Any, Any]:
    return {"type": type_, "data": json.dumps(data)}


def _add_to_workspace(client: redis.Redis, workspace_id: int, entry: dict[Any, Any]) -> Any:
    """XADD to a workspace's stream, kept to about its newest WORKSPACE_STREAM_MAXLEN entries
    (on a pipeline: queued with it)."""
    return client.xadd(
        workspace_stream(workspace_id), entry, maxlen=WORKSPACE_STREAM_MAXLEN, approximate=True
    )


def append_run(client: redis.Redis, run_id: int, type_: str, data: dict[str, Any]) -> str:
    """Add one entry to a run's stream; terminal entries start its expiry clock."""
    entry_id = str(client.xadd(run_stream(run_id), _entry(type_, data)))
    if type_ in TERMINAL_TYPES:
        client.expire(run_stream(run_id), RUN_STREAM_TTL_S)
    return entry_id


# A run's entry, added only while its stream exists, and whether a cancel was asked for: the
# worker's flush in one round trip (it was three: EXISTS, XADD, then the cancel flag's EXISTS).
# ARGV: the expiry to start (seconds, 0 for none), then the entry's fields.
_APPEND_IF_LIVE = """
local cancelled = redis.call('EXISTS', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', cancelled} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
if ARGV[1] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {id, cancelled}
"""


class LiveRun:
    """What a worker appends to one run's stream as it streams."""

    def __init__(self, client: redis.Redis, run_id: int) -> None:
        self._append = script(client, _APPEND_IF_LIVE)
        self._keys = [run_stream(run_id), cancel_flag(run_id)]

    def append_if_live(self, type_: str, data: dict[str, Any]) -> tuple[bool, bool]:
        """:func:`append_run`, unless the stream is gone (Redis came back empty: the caller
        starts it over); (added, a cancel was requested)."""
        expiry = RUN_STREAM_TTL_S if type_ in TERMINAL_TYPES else 0
        fields = [part for pair in _entry(type_, data).items() for part in pair]
        entry_id, cancelled = self._append(keys=self._keys, args=[expiry, *fields])
        return bool(entry_id), bool(cancelled)


def append_workspace(
    client: redis.Redis, workspace_id: int, type_: str, data: dict[str, Any]
) -> str:
    return str(_add_to_workspace(client, workspace_id, _entry(type_, data)))


def announce_queued(client: redis.Redis, *, run_id: int, task_id: int, workspace_id: int) -> None:
    """A run's ``queued`` state, on its stream and its workspace's, in one round trip."""
    with client.pipeline(transaction=False) as both:
        both.xadd(run_stream(run_id), _entry("state", {"status": "queued"}))
        feed = {"id": run_id, "task_id": task_id, "status": "queued"}
        _add_to_workspace(both, workspace_id, _entry("run", feed))
        both.execute()


def request_cancel(client: redis.Redis, run_id: int) -> None:
    client.set(cancel_flag(run_id), "1", ex=RUN_STREAM_TTL_S)


def cancel_requested(client: redis.Redis, run_id: int) -> bool:
    return bool(client.exists(cancel_flag(run_id)))


def decode_entry(fields: dict[str, str]) -> tuple[str, dict[str, Any]]:
    return fields.get("type", "state"), json.loads(fields.get("data") or "{}")
