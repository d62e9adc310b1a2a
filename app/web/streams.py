"""Tailing live streams for server-sent events: runs' tokens and state, a workspace's activity.

Shared by the JSON event routes (``routes/api/streams.py``) and the pages' live routes. A page
holds one EventSource that multiplexes every live thing it shows (``tail`` reads all their Redis
streams in one ``XREAD``); the events are framed by sse-starlette, which splits CR, LF and CRLF,
so nothing a model writes can end a line of the frame and set an event's id or type.

Every event's ``id`` says where the stream stands: a Redis entry id for one stream, or a
``cursor`` (``r12=…;w=…``) of them for a page's multiplexed stream, so a browser that reconnects
with ``Last-Event-ID`` resumes right after the last event it saw, and one that resumes after a
run ended is told so again. A viewer without ``Last-Event-ID`` (a late viewer, or htmx's SSE
extension after a hard reconnect) gets each run's whole text so far in one ``text`` event that
replaces, never appends. Once a run's stream has expired its text comes from SQL.

While streaming, the viewer's session and membership are checked again every ``RECHECK_S``
seconds whether or not events flow; the stream ends when either is gone. The database is only
touched in short sessions between reads — never held open while streaming.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import escape
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Request
from sqlmodel import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.config import get_settings
from app.db import get_engine
from app.engine import live
from app.engine.runs import queue_position
from app.engine.starting import waiting_notes
from app.models import Message, Role, RunStatus, User
from app.redis_conn import get_redis
from app.services import NotFound
from app.services.access import require_role, run_for
from app.services.workspaces import workspace_for
from app.web.deps import SignInRequired, user_from_request
from app.web.templating import templates

RECHECK_S = 2.0
MAX_RUNS = 50
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
TERMINAL_STATUSES = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
RETRY_MS = 1000


def stream_client() -> aioredis.Redis:
    return aioredis.Redis.from_url(
        get_settings().effective_redis_url,
        decode_responses=True,
        socket_timeout=RECHECK_S * 4,
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


END_EVENT = "live-end"


def event_stream(
    events: AsyncIterator[ServerSentEvent], *, page: bool = False
) -> EventSourceResponse:
    """An SSE response framed by sse-starlette (pings keep proxies from closing it). A page's
    stream ends with ``live-end``: its element says ``sse-close="live-end"``, so the browser
    does not reconnect to a stream with nothing left to say."""

    async def with_retry() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(retry=RETRY_MS)
        async for event in events:
            yield event
        if page:
            yield ServerSentEvent("end", event=END_EVENT)

    return EventSourceResponse(with_retry(), headers=SSE_HEADERS, ping=15, sep="\n")


@dataclass(frozen=True)
class RunSnapshot:
    status: str
    text: str
    error: str | None
    workspace_id: int


def run_snapshot(user: User, run_id: int) -> RunSnapshot:
    """Check access; the run's status, stored text and error, in one short session."""
    with Session(get_engine()) as session:
        run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
        message = session.get(Message, run.output_message_id) if run.output_message_id else None
        return RunSnapshot(
            run.status, message.content if message else "", run.error, task.workspace_id
        )


def viewable_workspace_id(user: User, slug: str) -> int:
    with Session(get_engine()) as session:
        workspace, _ = workspace_for(session=session, slug=slug, user=user, min_role=Role.viewer)
        assert workspace.id is not None
        return workspace.id


@dataclass
class Viewer:
    """Who watches, and the workspaces they must stay a member of."""

    request: Request
    user: User
    workspace_ids: set[int] = field(default_factory=set)

    def still_allowed(self) -> bool:
        """Still signed in (the same session or token) and still a member of every workspace."""
        with Session(get_engine()) as session:
            now = user_from_request(self.request, session)
            if now is None or now.id != self.user.id:
                return False
            for workspace_id in self.workspace_ids:
                try:
                    require_role(
                        session=session, workspace_id=workspace_id, user=now, min_role=Role.viewer
                    )
                except NotFound:
                    return False
        return True


@dataclass(frozen=True)
class LiveEvent:
    """One thing that happened: ``run_id`` None means the workspace feed. Types: a run's
    ``state``, ``reset``, ``token``, ``done``, ``error``, or ``text`` (its whole text so far);
    the feed's entries keep their own types."""

    run_id: int | None
    entry_id: str | None
    type: str
    data: dict[str, Any]


def _from_sql(run_id: int, snapshot: RunSnapshot) -> list[LiveEvent]:
    """The whole run from SQL, as a stream that starts over."""
    terminal = "error" if snapshot.status == RunStatus.failed else "done"
    return [
        LiveEvent(run_id, None, "reset", {"attempt": 0}),
        LiveEvent(run_id, None, "token", {"text": snapshot.text}),
        LiveEvent(run_id, None, terminal, {"status": snapshot.status, "error": snapshot.error}),
    ]


async def _open_run(
    client: aioredis.Redis, run_id: int, snapshot: RunSnapshot, last: str | None, whole: bool
) -> tuple[list[LiveEvent], str | None]:
    """What to send first for a run, and where to tail it from (None: it has ended)."""
    entries: Any = await client.xrange(live.run_stream(run_id))
    if not entries:
        if snapshot.status in TERMINAL_STATUSES:
            return _from_sql(run_id, snapshot), None
        return [], last or "0"
    newest_id, newest_fields = entries[-1]
    newest_type, newest_data = live.decode_entry(newest_fields)
    if last is not None:
        if newest_type in live.TERMINAL_TYPES and live.id_order(last) >= live.id_order(newest_id):
            # Resuming after the end: say again that it has ended, or the client waits for ever.
            return [LiveEvent(run_id, newest_id, newest_type, newest_data)], None
        return [], last
    if not whole:
        return [], "0"  # replay every entry from the start
    text = ""
    for entry_id, fields in entries:
        type_, data = live.decode_entry(fields)
        if type_ == "reset":
            text = ""
        elif type_ == "token":
            text += str(data.get("text", ""))
        elif type_ in live.TERMINAL_TYPES:
            return [LiveEvent(run_id, entry_id, type_, data)], None
    return [LiveEvent(run_id, newest_id, "text", {"text": text})], newest_id


@dataclass
class Tail:
    """The positions of a multiplexed stream: Redis key → last entry id seen (``l``: a page's
    own mark, e.g. the newest message it shows). Its consumer may ask ``tail`` to follow more
    runs (``follow``), to say when it checks access (``ticks``), or to end (``finished``)."""

    positions: dict[str, str] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)
    ticks: bool = False
    finished: bool = False

    def cursor(self) -> str:
        return ";".join(f"{name}={entry}" for name, entry in self.positions.items())

    def follow(self, run_id: int) -> None:
        self.pending.append(run_id)

    @staticmethod
    def parse(value: str | None) -> dict[str, str]:
        """``r12=…;w=…`` from Last-Event-ID; anything malformed is ignored."""
        found: dict[str, str] = {}
        for part in (value or "").split(";"):
            name, _, entry = part.partition("=")
            if name == "l":  # a message id
                if entry.isdigit() and len(entry) <= 15:
                    found[name] = entry
                continue
            if name[:1] == "r" and len(name) > 16:
                continue  # no such run id
            parsed = live.parse_stream_id(entry)
            if parsed and (name == "w" or (name[:1] == "r" and name[1:].isdigit())):
                found[name] = parsed
        return found


async def tail(
    viewer: Viewer,
    *,
    runs: dict[int, str | None] | None = None,
    feed: tuple[int, str | None] | None = None,
    whole_text: bool = True,
    tail_state: Tail | None = None,
) -> AsyncIterator[LiveEvent]:
    """Every event of the runs (each after its own last id) and of the workspace feed (after
    its last id, or from now), until the runs end and no feed is followed, or the viewer may no
    longer see them. ``whole_text``: a run without a last id starts with one ``text`` event
    instead of all its entries."""
    tail_state = tail_state if tail_state is not None else Tail()
    client = stream_client()
    sources: dict[str, int | None] = {}  # Redis key → run id (None: the feed)
    active: dict[str, str] = {}

    async def opened(run_id: int, last: str | None) -> list[LiveEvent]:
        snapshot = await run_in_threadpool(run_snapshot, viewer.user, run_id)
        viewer.workspace_ids.add(snapshot.workspace_id)
        first, position = await _open_run(client, run_id, snapshot, last, whole_text)
        key = live.run_stream(run_id)
        sources[key] = run_id
        for event in first:
            if event.entry_id:
                tail_state.positions[f"r{run_id}"] = event.entry_id
        if position is not None:
            active[key] = position
        return first

    try:
        for run_id, last in (runs or {}).items():
            for event in await opened(run_id, last):
                yield event
        if feed is not None:
            workspace_id, last = feed
            viewer.workspace_ids.add(workspace_id)
            key = live.workspace_stream(workspace_id)
            if last is None:
                newest: Any = await client.xrevrange(key, count=1)
                last = str(newest[0][0]) if newest else "0-0"
            sources[key] = None
            active[key] = last
        next_check = time.monotonic() + RECHECK_S
        while active and not tail_state.finished:
            while tail_state.pending:
                run_id = tail_state.pending.pop(0)
                if live.run_stream(run_id) not in sources:
                    for event in await opened(run_id, None):
                        yield event
            streams: Any = dict(active)
            found: Any = await client.xread(streams, block=int(RECHECK_S * 1000), count=200)
            for key, items in found or []:
                source = sources[key]
                for entry_id, fields in items:
                    type_, data = live.decode_entry(fields)
                    active[key] = entry_id
                    tail_state.positions[f"r{source}" if source else "w"] = entry_id
                    yield LiveEvent(source, entry_id, type_, data)
                    if source is not None and type_ in live.TERMINAL_TYPES:
                        del active[key]
                        break
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + RECHECK_S
            if not await run_in_threadpool(viewer.still_allowed):
                return
            if tail_state.ticks:
                yield LiveEvent(None, None, "tick", {})
            for key in list(active):
                quiet = sources[key]
                if quiet is None or await client.exists(key):
                    continue
                snapshot = await run_in_threadpool(run_snapshot, viewer.user, quiet)
                if snapshot.status in TERMINAL_STATUSES:  # the stream is gone (Redis restarted)
                    del active[key]
                    for event in _from_sql(quiet, snapshot):
                        yield event
    finally:
        await client.aclose()


async def feed_position(workspace_id: int) -> str:
    """The id of the newest entry of a workspace's feed now (to follow it from here on)."""
    client = stream_client()
    try:
        newest: Any = await client.xrevrange(live.workspace_stream(workspace_id), count=1)
    finally:
        await client.aclose()
    return str(newest[0][0]) if newest else "0-0"


def run_ids_param(value: str) -> list[int]:
    """``1,2,3`` from a query string: at most MAX_RUNS run ids."""
    ids = []
    for part in value.split(","):
        if part.strip():
            if not part.strip().isdigit():
                raise ValueError(part)
            ids.append(int(part))
    if len(ids) > MAX_RUNS:
        raise ValueError("too many")
    return list(dict.fromkeys(ids))


def live_url(path: str, run_ids: list[int | None]) -> str | None:
    """The address of a page's one live stream, or None when nothing on it is live."""
    ids = [str(run_id) for run_id in run_ids if run_id is not None]
    return f"{path}?runs={','.join(ids)}" if ids else None


def text_fragment(event: LiveEvent) -> tuple[str, str] | None:
    """For a run's text events: the event name a page listens for and the escaped text
    (``-token`` appends; ``-text`` replaces: the whole text so far, or nothing after a reset)."""
    if event.run_id is None:
        return None
    if event.type == "token":
        return f"run-{event.run_id}-token", escape(str(event.data.get("text", "")))
    if event.type in ("text", "reset"):
        return f"run-{event.run_id}-text", escape(str(event.data.get("text", "")))
    return None


def state_fragment(user: User, run_id: int) -> str:
    """A run's state badge (queued with its position, or running), as it is now in SQL."""
    with Session(get_engine()) as session:
        run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
        position = queue_position(session=session, run=run)
        notes = waiting_notes(session, get_redis(), [run])
        return templates.get_template("_run_state.html").render(
            run=run, position=position, starting_notes=notes
        )
