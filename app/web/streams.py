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

One reader per stream per web process (:class:`StreamHub`, one per event loop): each live
run's Redis stream (and each followed workspace feed) is read by one task with one blocking
``XREAD`` on the process's one Redis client, and its entries are fanned out to the inboxes of
that process's viewers. A run's reader keeps the run's entries (a run's stream ends), so a viewer
that connects or resumes mid-run gets its start from memory; a feed's reader keeps the newest
``FEED_KEEP``. A viewer that falls ``MAX_PENDING`` entries behind is dropped (its stream ends and
the browser resumes after ``Last-Event-ID``), so one slow viewer never holds up the others.

While streaming, the viewer's session and membership are checked again every ``RECHECK_S``
seconds whether or not events flow, for all of the process's viewers in one short database
session; the stream ends when either is gone. The database is only touched in short sessions
between reads — never held open while streaming.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import escape
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Request
from sqlmodel import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Send

from app.config import get_settings
from app.db import get_engine
from app.engine import live
from app.engine.runs import queue_position
from app.engine.starting import waiting_notes
from app.models import Role, RunStatus, User
from app.redis_conn import get_redis
from app.services import NotFound
from app.services.access import require_role, run_for
from app.services.run_sight import RunSight, run_sight, signed_in_sight
from app.services.workspaces import workspace_for
from app.web.deps import SESSION_COOKIE, SignInRequired, session_cookie, user_from_request
from app.web.in_flight import InFlight
from app.web.templating import templates

RECHECK_S = 2.0
MAX_RUNS = 50
MAX_PENDING = 2000  # entries a viewer may fall behind before it is dropped (it then resumes)
FEED_KEEP = 500  # the newest entries of a workspace feed its reader keeps for new viewers
READ_COUNT = 500
READ_BLOCK_S = 2.0  # a reader's XREAD waits this long; then it looks whether its stream is gone
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}
TERMINAL_STATUSES = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
RETRY_MS = 1000


def stream_client() -> aioredis.Redis:
    """The Redis client of this event loop's hub (one connection pool a process)."""
    return hub().client


def stream_user(request: Request) -> User:
    """The signed-in user, looked up in a session that closes at once (no yield: a streaming
    response must not keep a database session open)."""
    with Session(get_engine()) as session:
        user = user_from_request(request, session)
    if user is None:
        raise SignInRequired()
    return user


StreamUser = Annotated[User, Depends(stream_user)]


async def stream_credentials(request: Request) -> None:
    """Refuse a request without a token or session cookie before anything else (its path is
    not even validated); the caller looks the user up later, with what else it reads. Async:
    FastAPI runs a plain ``def`` dependency in its thread pool, a hop for nothing here."""
    if not request.headers.get("authorization") and not request.cookies.get(SESSION_COOKIE):
        raise SignInRequired()


END_EVENT = "live-end"


class ViewerDropped(Exception):
    """The viewer fell too far behind: its stream ends without ``live-end``, so the browser
    reconnects and resumes after its ``Last-Event-ID``."""


def event_stream(
    events: AsyncIterator[ServerSentEvent | bytes], *, page: bool = False
) -> EventSourceResponse:
    """An SSE response framed by sse-starlette (pings keep proxies from closing it). A page's
    stream ends with ``live-end``: its element says ``sse-close="live-end"``, so the browser
    does not reconnect to a stream with nothing left to say."""

    async def with_retry() -> AsyncIterator[ServerSentEvent | bytes]:
        yield ServerSentEvent(retry=RETRY_MS)
        try:
            async for event in events:
                yield event
        except ViewerDropped:
            return
        if page:
            yield ServerSentEvent("end", event=END_EVENT)

    return _EventSource(with_retry(), headers=SSE_HEADERS, ping=15, sep="\n")


class _EventSource(EventSourceResponse):
    """sse-starlette's response, without a cancel scope around every send when no send timeout
    is set: ``anyio.move_on_after(None)`` times nothing, and every event to every viewer paid
    for one (8.6 µs against 0.2 µs for the send itself, timed on a busy machine)."""

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)


@dataclass(frozen=True)
class RunSnapshot:
    status: str
    text: str
    error: str | None
    workspace_id: int


def _snapshot(sight: RunSight) -> RunSnapshot:
    # The stored text is only ever sent for an ended run (whose stream may be gone).
    return RunSnapshot(sight.status, sight.text, sight.error, sight.workspace_id)


def run_snapshot(user: User, run_id: int) -> RunSnapshot:
    """Check access; the run's status, stored text and error, in one query."""
    assert user.id is not None
    with Session(get_engine()) as session:
        return _snapshot(run_sight(session=session, run_id=run_id, user_id=user.id))


def user_and_run(request: Request, run_id: int) -> tuple[User, RunSnapshot]:
    """The signed-in user and, with access checked once, the run: one short session (all a
    run's JSON stream needs before it starts), one query for a session cookie."""
    with Session(get_engine()) as session:
        cookie = session_cookie(request)
        if cookie is not None:
            found = signed_in_sight(session=session, session_token=cookie, run_id=run_id)
            if found is None:
                raise SignInRequired()
            user, sight = found
            return user, _snapshot(sight)
        signed_in = user_from_request(request, session)
        if signed_in is None or signed_in.id is None:
            raise SignInRequired()
        return signed_in, _snapshot(run_sight(session=session, run_id=run_id, user_id=signed_in.id))


async def connecting_viewer(request: Request, run_id: int) -> tuple[User, RunSnapshot]:
    """:func:`user_and_run`, shared by the viewers with the same credentials that connect to
    the same run while it is looked up (never reused after: see ``app/web/in_flight.py``)."""
    credentials = (request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))
    return await hub().lookups.run((credentials, run_id), user_and_run, request, run_id)


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
        return allowed([self])[0]


def allowed(viewers: list[Viewer]) -> list[bool]:
    """:meth:`Viewer.still_allowed` for many viewers in one session; a sign-in and a
    membership shared by several viewers are looked up once."""
    users: dict[tuple[str, str], User | None] = {}
    members: dict[tuple[int, int], bool] = {}
    found = []
    with Session(get_engine()) as session:
        for viewer in viewers:
            credentials = (
                viewer.request.headers.get("authorization", ""),
                viewer.request.cookies.get(SESSION_COOKIE, ""),
            )
            if credentials not in users:
                users[credentials] = user_from_request(viewer.request, session)
            now = users[credentials]
            ok = now is not None and now.id == viewer.user.id
            for workspace_id in list(viewer.workspace_ids) if ok else ():
                assert now is not None and now.id is not None
                if (now.id, workspace_id) not in members:
                    try:
                        require_role(
                            session=session, workspace_id=workspace_id, user=now,
                            min_role=Role.viewer,
                        )  # fmt: skip
                        members[now.id, workspace_id] = True
                    except NotFound:
                        members[now.id, workspace_id] = False
                ok = ok and members[now.id, workspace_id]
            found.append(ok)
    return found


@dataclass(frozen=True)
class LiveEvent:
    """One thing that happened: ``run_id`` None means the workspace feed. Types: a run's
    ``state``, ``reset``, ``token``, ``done``, ``error``, or ``text`` (its whole text so far);
    the feed's entries keep their own types."""

    run_id: int | None
    entry_id: str | None
    type: str
    data: dict[str, Any]
    raw: str | None = None  # ``data`` as JSON, as it came from Redis (shared by every viewer)
    shared: dict[str, bytes] | None = None  # per entry, for every viewer: frames encoded once


def _from_sql(run_id: int, snapshot: RunSnapshot) -> list[LiveEvent]:
    """The whole run from SQL, as a stream that starts over."""
    terminal = "error" if snapshot.status == RunStatus.failed else "done"
    return [
        LiveEvent(run_id, None, "reset", {"attempt": 0}),
        LiveEvent(run_id, None, "token", {"text": snapshot.text}),
        LiveEvent(run_id, None, terminal, {"status": snapshot.status, "error": snapshot.error}),
    ]


# (id, type, data, the data's JSON, what viewers share: e.g. the entry's SSE frame, encoded once)
Entry = tuple[str, str, dict[str, Any], str, dict[str, bytes]]


def _decode(entry_id: str, fields: dict[str, str]) -> Entry:
    raw = fields.get("data") or "{}"
    type_, data = live.decode_entry(fields)
    return entry_id, type_, data, raw, {}


def _after(entries: list[Entry], last: str) -> list[Entry]:
    """The entries after ``last`` (they are in id order)."""
    order = live.id_order(last)
    index = len(entries)
    while index > 0 and live.id_order(entries[index - 1][0]) > order:
        index -= 1
    return entries[index:]


class Inbox:
    """What a viewer has yet to send: entries of the streams it follows (``(key, entry)``)
    and word from the hub (``("check", ok)``, ``("error", exc)``)."""

    def __init__(self) -> None:
        self.items: deque[tuple[str, Any]] = deque()
        self.ready = asyncio.Event()
        self.dropped = False  # fell more than MAX_PENDING entries behind
        self.limit = MAX_PENDING  # more for a viewer that starts with entries to catch up on

    def catch_up(self, key: str, entries: list[Entry]) -> None:
        """Entries the viewer starts with: they never count as falling behind."""
        self.items.extend((key, entry) for entry in entries)
        self.limit = len(self.items) + MAX_PENDING
        self.ready.set()

    def put(self, key: str, entry: Any) -> None:
        if self.dropped:
            return
        if len(self.items) >= self.limit:
            self.dropped = True
            self.items.clear()
        else:
            self.items.append((key, entry))
        self.ready.set()

    def tell(self, word: str, value: Any) -> None:
        self.items.appendleft((f" {word}", value))  # keys never start with a space
        self.ready.set()

    async def get(self) -> tuple[str, Any]:
        while not self.items:
            if self.dropped:
                return " dropped", None
            self.limit = MAX_PENDING  # caught up
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


class Reader:
    """One Redis stream, read by one task for every subscribed inbox of this process."""

    def __init__(self, hub: StreamHub, key: str, *, run: bool) -> None:
        self.hub = hub
        self.key = key
        self.run = run  # a run's stream: every entry is kept; a feed: the newest FEED_KEEP
        self.entries: list[Entry] = []
        self.base = "0-0"  # ``entries`` hold every entry after this id
        self.position = "0-0"  # the newest id read
        self.inboxes: set[Inbox] = set()
        self.users = 0  # viewers that hold it (subscribed, or about to)
        self.loaded = asyncio.Event()
        self.ended = False  # a run's terminal entry was read
        self.missing = False  # the stream did not exist when it was last quiet
        self.failure: BaseException | None = None
        self.reads = 0  # XREADs done (for the tests)
        self.task = asyncio.get_running_loop().create_task(self._read(), name=f"read {key}")

    async def _read(self) -> None:
        client = self.hub.client
        try:
            if self.run:
                found: Any = await client.xrange(self.key)
                self.entries = [_decode(entry_id, fields) for entry_id, fields in found]
                if self.entries:
                    self.position = self.entries[-1][0]
                    self.ended = self.entries[-1][1] in live.TERMINAL_TYPES
            else:
                newest: Any = await client.xrevrange(self.key, count=1)
                self.base = self.position = str(newest[0][0]) if newest else "0-0"
            self.loaded.set()
            while not self.ended:
                self.reads += 1
                read: Any = await client.xread(
                    {self.key: self.position}, block=int(READ_BLOCK_S * 1000), count=READ_COUNT
                )
                if not read:
                    self.missing = not await client.exists(self.key)
                    continue
                self.missing = False
                for _, items in read:
                    for entry_id, fields in items:
                        self._add(_decode(entry_id, fields))
                        if self.ended:
                            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis went away: every viewer's stream ends, and reconnects
            self.failure = exc
            self.loaded.set()
            for inbox in self.inboxes:
                inbox.tell("error", exc)
            self.hub.forget(self)

    def _add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.position = entry[0]
        if self.run:
            self.ended = entry[1] in live.TERMINAL_TYPES
        elif len(self.entries) > 2 * FEED_KEEP:
            self.base = self.entries[-FEED_KEEP - 1][0]
            del self.entries[:-FEED_KEEP]
        for inbox in self.inboxes:
            inbox.put(self.key, entry)

    def subscribe(self, inbox: Inbox, last: str) -> None:
        """From now on ``inbox`` gets every entry after ``last`` (at or after ``base``)."""
        inbox.catch_up(self.key, _after(self.entries, last))
        self.inboxes.add(inbox)


class StreamHub:
    """This event loop's Redis client, readers and viewers."""

    def __init__(self) -> None:
        self.client = aioredis.Redis.from_url(
            get_settings().effective_redis_url,
            decode_responses=True,
            socket_timeout=READ_BLOCK_S * 4,
        )
        self.readers: dict[str, Reader] = {}
        self.viewers: dict[Inbox, Viewer] = {}
        self.lookups = InFlight()  # connecting viewers' sign-in and access
        self._checker: asyncio.Task[None] | None = None

    def reader(self, key: str, *, run: bool) -> Reader:
        """The reader of ``key``, started if none is; :meth:`release` it when done."""
        found = self.readers.get(key)
        if found is None:
            found = self.readers[key] = Reader(self, key, run=run)
        found.users += 1
        return found

    def forget(self, reader: Reader) -> None:
        if self.readers.get(reader.key) is reader:
            del self.readers[reader.key]

    def release(self, reader: Reader, inbox: Inbox) -> None:
        """``inbox``'s viewer is done with ``reader``; the last one stops it."""
        reader.inboxes.discard(inbox)
        reader.users -= 1
        if reader.users <= 0:
            self.forget(reader)
            reader.task.cancel()

    def watch(self, inbox: Inbox, viewer: Viewer) -> None:
        """Check ``viewer``'s access every RECHECK_S seconds (with everyone else's)."""
        self.viewers[inbox] = viewer
        if self._checker is None or self._checker.done():
            self._checker = asyncio.get_running_loop().create_task(self._check(), name="access")

    def unwatch(self, inbox: Inbox) -> None:
        self.viewers.pop(inbox, None)

    async def _check(self) -> None:
        while self.viewers:
            await asyncio.sleep(RECHECK_S)
            watched = list(self.viewers.items())
            if not watched:
                break
            try:
                results = await run_in_threadpool(allowed, [viewer for _, viewer in watched])
            except Exception as exc:  # the database is down: their streams end (and reconnect)
                results = [exc] * len(watched)  # type: ignore[list-item]
            for (inbox, _), ok in zip(watched, results, strict=True):
                if inbox in self.viewers:
                    inbox.tell("check", ok)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamHub] = weakref.WeakKeyDictionary()


def hub() -> StreamHub:
    """The hub of the running event loop (a web process has one)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = StreamHub()
    return found


def _open_run(
    reader: Reader, run_id: int, snapshot: RunSnapshot, last: str | None, whole: bool
) -> tuple[list[LiveEvent], str | None]:
    """What to send first for a run, and where to follow it from (None: it has ended)."""
    entries = reader.entries
    if not entries:
        if snapshot.status in TERMINAL_STATUSES:
            return _from_sql(run_id, snapshot), None
        return [], last or "0-0"
    newest_id, newest_type, newest_data, newest_raw, newest_shared = entries[-1]
    if last is not None:
        if newest_type in live.TERMINAL_TYPES and live.id_order(last) >= live.id_order(newest_id):
            # Resuming after the end: say again that it has ended, or the client waits for ever.
            event = LiveEvent(
                run_id, newest_id, newest_type, newest_data, newest_raw, newest_shared
            )
            return [event], None
        return [], last
    if not whole:
        return [], "0-0"  # replay every entry from the start
    parts: list[str] = []
    for entry_id, type_, data, raw, shared in entries:
        if type_ == "reset":
            parts.clear()
        elif type_ == "token":
            parts.append(str(data.get("text", "")))
        elif type_ in live.TERMINAL_TYPES:
            return [LiveEvent(run_id, entry_id, type_, data, raw, shared)], None
    return [LiveEvent(run_id, newest_id, "text", {"text": "".join(parts)})], newest_id


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
    snapshots: dict[int, RunSnapshot] | None = None,
) -> AsyncIterator[LiveEvent]:
    """Every event of the runs (each after its own last id) and of the workspace feed (after
    its last id, or from now), until the runs end and no feed is followed, or the viewer may no
    longer see them. ``whole_text``: a run without a last id starts with one ``text`` event
    instead of all its entries. ``snapshots``: runs whose access the caller has just checked.

    The entries come from this process's hub: one reader per stream, whoever watches it."""
    tail_state = tail_state if tail_state is not None else Tail()
    streams = hub()
    inbox = Inbox()
    sources: dict[str, int | None] = {}  # Redis key → run id (None: the feed)
    positions: dict[str, str] = {}  # the streams followed → the last id sent
    readers: dict[str, Reader] = {}

    async def opened(run_id: int, last: str | None) -> list[LiveEvent]:
        snapshot = (snapshots or {}).pop(run_id, None)
        if snapshot is None:
            snapshot = await run_in_threadpool(run_snapshot, viewer.user, run_id)
        viewer.workspace_ids.add(snapshot.workspace_id)
        key = live.run_stream(run_id)
        readers[key] = reader = streams.reader(key, run=True)
        await reader.loaded.wait()
        if reader.failure is not None:
            raise reader.failure
        first, position = _open_run(reader, run_id, snapshot, last, whole_text)
        sources[key] = run_id
        for event in first:
            if event.entry_id:
                tail_state.positions[f"r{run_id}"] = event.entry_id
        if position is None:
            stop(key)
        else:
            positions[key] = position
            reader.subscribe(inbox, position)
        return first

    async def catch_up(key: str, last: str, reader: Reader) -> str:
        """Entries of a feed older than its reader keeps: read from Redis."""
        while live.id_order(last) < live.id_order(reader.base):
            older: Any = await streams.client.xrange(key, min=f"({last}", max=reader.base)
            inbox.catch_up(key, [_decode(entry_id, fields) for entry_id, fields in older])
            for entry_id, _ in older:
                last = entry_id
            if not older:
                break
        return last

    def stop(key: str) -> None:
        positions.pop(key, None)
        reader = readers.pop(key, None)
        if reader is not None:
            streams.release(reader, inbox)

    streams.watch(inbox, viewer)
    try:
        for run_id, last in (runs or {}).items():
            for event in await opened(run_id, last):
                yield event
        if feed is not None:
            workspace_id, last = feed
            viewer.workspace_ids.add(workspace_id)
            key = live.workspace_stream(workspace_id)
            readers[key] = reader = streams.reader(key, run=False)
            await reader.loaded.wait()
            if reader.failure is not None:
                raise reader.failure
            sources[key] = None
            positions[key] = last = last or reader.position
            reader.subscribe(inbox, await catch_up(key, last, reader))
        while positions and not tail_state.finished:
            while tail_state.pending:
                run_id = tail_state.pending.pop(0)
                if live.run_stream(run_id) not in sources:
                    for event in await opened(run_id, None):
                        yield event
            if not positions:
                break
            key, item = await inbox.get()
            if key == " dropped":
                raise ViewerDropped()
            if key == " error":
                raise item
            if key == " check":
                if item is not True:
                    if isinstance(item, BaseException):
                        raise item
                    return
                if tail_state.ticks:
                    yield LiveEvent(None, None, "tick", {})
                for quiet in list(positions):
                    quiet_run = sources[quiet]
                    quiet_reader = readers.get(quiet)
                    if quiet_run is None or quiet_reader is None or not quiet_reader.missing:
                        continue
                    snapshot = await run_in_threadpool(run_snapshot, viewer.user, quiet_run)
                    if snapshot.status in TERMINAL_STATUSES:  # the stream is gone (Redis restarted)
                        stop(quiet)
                        for event in _from_sql(quiet_run, snapshot):
                            yield event
                continue
            if key not in positions:
                continue  # a run that has ended for this viewer
            entry_id, type_, data, raw, shared = item
            if live.id_order(entry_id) <= live.id_order(positions[key]):
                continue
            positions[key] = entry_id
            source = sources[key]
            tail_state.positions[f"r{source}" if source else "w"] = entry_id
            if source is not None and type_ in live.TERMINAL_TYPES:
                stop(key)
            yield LiveEvent(source, entry_id, type_, data, raw, shared)
    finally:
        streams.unwatch(inbox)
        for key in list(readers):
            stop(key)


async def feed_position(workspace_id: int) -> str:
    """The id of the newest entry of a workspace's feed now (to follow it from here on)."""
    newest: Any = await stream_client().xrevrange(live.workspace_stream(workspace_id), count=1)
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
