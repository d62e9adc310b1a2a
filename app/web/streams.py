"""Tailing live streams for server-sent events: a run's tokens and state, a workspace's activity.

Shared by the JSON event routes (``routes/api/streams.py``) and the live HTML pages.

Every event's ``id`` is its Redis stream entry id, so a browser that reconnects with
``Last-Event-ID`` resumes right after the last event it saw: nothing lost, nothing repeated. A
viewer who arrives late reads the run's stream from the start. Once a run's stream has expired
its text comes from SQL. The database is only touched in short sessions before and between
reads — never held open while streaming.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.config import get_settings
from app.db import get_engine
from app.engine import live
from app.models import Message, Role, RunStatus, User
from app.services import NotFound
from app.services.access import require_role, run_for
from app.services.workspaces import workspace_for
from app.web.deps import SignInRequired, user_from_request

BLOCK_MS = 5_000
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
TERMINAL_STATUSES = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def stream_client() -> aioredis.Redis:
    return aioredis.Redis.from_url(
        get_settings().effective_redis_url, decode_responses=True, socket_timeout=BLOCK_MS / 500
    )


def stream_user(request: Request) -> User:
    """The signed-in user, looked up in a session that closes at once (no yield: a streaming
    response must not keep a database session open)."""
    with Session(get_engine()) as session:
        user = user_from_request(request, session)
    if user is None:
        raise SignInRequired()
    return user


StreamUser = Annotated[User, Depends(stream_user)]


async def read_after(
    client: aioredis.Redis, key: str, last: str
) -> list[tuple[str, dict[str, str]]]:
    """Entries after ``last``, waiting up to BLOCK_MS for the first one."""
    found: Any = await client.xread({key: last}, block=BLOCK_MS, count=200)
    return [(entry_id, fields) for entry_id, fields in found[0][1]] if found else []


def run_snapshot(user: User, run_id: int) -> tuple[str, str, str | None]:
    """Check access; the run's status, stored text and error, in one short session."""
    with Session(get_engine()) as session:
        run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
        message = session.get(Message, run.output_message_id) if run.output_message_id else None
        return run.status, message.content if message else "", run.error


KEEP_ALIVE = "keep-alive"
Entry = tuple[str | None, str, dict[str, Any]]


def _from_sql(status: str, text: str, error: str | None) -> list[Entry]:
    """The whole run from SQL, as a stream that starts over."""
    terminal = "error" if status == RunStatus.failed else "done"
    return [
        (None, "reset", {"attempt": 0}),
        (None, "token", {"text": text}),
        (None, terminal, {"status": status, "error": error}),
    ]


async def run_entries(
    request: Request, user: User, run_id: int, last_event_id: str | None
) -> AsyncIterator[Entry]:
    """A run's events after ``last_event_id`` (all of them without one), until its end;
    ``keep-alive`` entries while nothing happens."""
    status, text, error = await run_in_threadpool(run_snapshot, user, run_id)
    client = stream_client()
    key = live.run_stream(run_id)
    last = last_event_id or "0"
    try:
        if not await client.exists(key) and status in TERMINAL_STATUSES:
            for entry in _from_sql(status, text, error):
                yield entry
            return
        while not await request.is_disconnected():
            found = await read_after(client, key, last)
            if not found:
                now = await run_in_threadpool(run_snapshot, user, run_id)
                if now[0] in TERMINAL_STATUSES and not await client.exists(key):
                    for entry in _from_sql(*now):  # the stream is gone (Redis restarted)
                        yield entry
                    return
                yield (None, KEEP_ALIVE, {})
                continue
            for entry_id, fields in found:
                type_, data = live.decode_entry(fields)
                last = entry_id
                yield (entry_id, type_, data)
                if type_ in live.TERMINAL_TYPES:
                    return
    finally:
        await client.aclose()


def viewable_workspace_id(user: User, slug: str) -> int:
    with Session(get_engine()) as session:
        workspace, _ = workspace_for(session=session, slug=slug, user=user, min_role=Role.viewer)
        assert workspace.id is not None
        return workspace.id


def _still_member(user: User, workspace_id: int) -> bool:
    with Session(get_engine()) as session:
        try:
            require_role(
                session=session, workspace_id=workspace_id, user=user, min_role=Role.viewer
            )
        except NotFound:
            return False
        return True


async def workspace_entries(
    request: Request, user: User, workspace_id: int, last_event_id: str | None
) -> AsyncIterator[Entry]:
    """A workspace's activity after ``last_event_id`` (from now without one), for as long as
    the viewer stays a member; ``keep-alive`` entries while nothing happens."""
    client = stream_client()
    key = live.workspace_stream(workspace_id)
    try:
        last = last_event_id
        if last is None:
            newest: Any = await client.xrevrange(key, count=1)
            last = str(newest[0][0]) if newest else "0-0"
        while not await request.is_disconnected():
            found = await read_after(client, key, last)
            if not found:
                # Membership can be withdrawn while a page is open.
                if not await run_in_threadpool(_still_member, user, workspace_id):
                    return
                yield (None, KEEP_ALIVE, {})
                continue
            for entry_id, fields in found:
                type_, data = live.decode_entry(fields)
                last = entry_id
                yield (entry_id, type_, data)
    finally:
        await client.aclose()


def html_event(event: str, html: str, event_id: str | None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    data = "".join(f"data: {line}\n" for line in html.split("\n"))
    return f"{head}event: {event}\n{data}\n"
