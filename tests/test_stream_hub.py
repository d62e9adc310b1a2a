"""The stream hub: one Redis reader per live run per process, fanned out to its viewers.

``tail`` is driven directly, against the test Redis, by viewers whose access was checked by the
caller (``snapshots``); entries are written as the worker writes them. Nothing waits a fixed
time: each step waits for the event it needs."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.engine import live
from app.models import RunStatus, User
from app.redis_conn import get_redis
from app.web import streams
from app.web.streams import LiveEvent, RunSnapshot, Viewer, ViewerDropped, tail

pytestmark = pytest.mark.timeout(60)

_run_ids = itertools.count(2_000_000_000)


class _Request:
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}


def _viewer(user_id: int = 1) -> Viewer:
    return Viewer(_Request(), User(id=user_id, email=f"u{user_id}@example.com"))  # type: ignore[arg-type]


def _follow(run_id: int, viewer: Viewer | None = None, last: str | None = None):
    snapshot = RunSnapshot(RunStatus.running, "", None, workspace_id=1)
    return tail(
        viewer or _viewer(), runs={run_id: last}, whole_text=False, snapshots={run_id: snapshot}
    )


async def _read(events: AsyncIterator[LiveEvent], count: int) -> list[LiveEvent]:
    return [await anext(events) for _ in range(count)]


async def _rest(events: AsyncIterator[LiveEvent]) -> list[LiveEvent]:
    return [event async for event in events]


def _publish(run_id: int, type_: str, data: dict[str, Any]) -> str:
    return live.append_run(get_redis(), run_id, type_, data)


def _text(events: list[LiveEvent]) -> str:
    return "".join(str(e.data.get("text", "")) for e in events if e.type == "token")


def _run(test: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``test`` on a loop of its own, in a thread: the browser tests leave a loop running in
    this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(test())).result()  # type: ignore[arg-type]


@pytest.fixture
def run_id() -> Any:
    run = next(_run_ids)
    yield run
    get_redis().delete(live.run_stream(run))


@pytest.fixture
def quiet_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """No periodic access check unless a test asks for one."""
    monkeypatch.setattr(streams, "RECHECK_S", 3600.0)


def test_two_viewers_of_a_run_share_one_reader(run_id: int, quiet_checks: None) -> None:
    async def test() -> None:
        _publish(run_id, "state", {"status": "running"})
        hub = streams.hub()
        reads: list[str] = []
        xread = hub.client.xread

        async def counted(streams_: dict[str, str], **kwargs: Any) -> Any:
            reads.extend(streams_)
            return await xread(streams_, **kwargs)

        hub.client.xread = counted  # type: ignore[method-assign]
        first, second = _follow(run_id), _follow(run_id)
        # Each has its first event: both are subscribed.
        assert [e.type for e in await _read(first, 1)] == ["state"]
        assert [e.type for e in await _read(second, 1)] == ["state"]
        key = live.run_stream(run_id)
        assert list(hub.readers) == [key]
        reader = hub.readers[key]
        assert len(reader.inboxes) == 2
        for word in ("one ", "two ", "three"):
            _publish(run_id, "token", {"text": word})
        _publish(run_id, "done", {"status": "succeeded"})
        got = await asyncio.gather(_rest(first), _rest(second))
        assert [_text(events) for events in got] == ["one two three"] * 2
        assert [events[-1].type for events in got] == ["done", "done"]
        # Every XREAD of the run's stream was the one reader's, however many viewers.
        assert reads and set(reads) == {key}
        assert len(reads) == reader.reads
        assert key not in hub.readers  # the last viewer gone, the reader is stopped

    _run(test)


def test_a_viewer_that_leaves_does_not_stop_the_others(run_id: int, quiet_checks: None) -> None:
    async def test() -> None:
        _publish(run_id, "state", {"status": "running"})
        leaving, staying = _follow(run_id), _follow(run_id)
        await _read(leaving, 1)
        await _read(staying, 1)
        _publish(run_id, "token", {"text": "a"})
        assert _text(await _read(leaving, 1)) == "a"
        await leaving.aclose()  # the browser went away
        hub = streams.hub()
        assert len(hub.readers[live.run_stream(run_id)].inboxes) == 1
        _publish(run_id, "token", {"text": "b"})
        _publish(run_id, "done", {"status": "succeeded"})
        events = await _rest(staying)
        assert _text(events) == "ab"
        assert events[-1].type == "done"

    _run(test)


def test_a_slow_viewer_is_dropped_and_resumes_without_holding_up_the_others(
    run_id: int, quiet_checks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "MAX_PENDING", 5)

    async def test() -> None:
        _publish(run_id, "state", {"status": "running"})
        slow, fast = _follow(run_id), _follow(run_id)
        seen = await _read(slow, 1)
        await _read(fast, 1)
        words = [f"w{i} " for i in range(21)]
        events: list[LiveEvent] = []
        for start in range(0, len(words), 3):  # the fast viewer keeps up, three at a time
            for word in words[start : start + 3]:
                _publish(run_id, "token", {"text": word})
            events += await _read(fast, 3)
        _publish(run_id, "done", {"status": "succeeded"})
        events += await _rest(fast)
        # The fast viewer got everything while the slow one read nothing.
        assert _text(events) == "".join(words)
        # The slow one fell too far behind: its stream ends (without the end a page's browser
        # would stop at) ...
        with pytest.raises(ViewerDropped):
            await _rest(slow)
        # ... and its browser resumes after the last event it saw.
        resumed = await _rest(_follow(run_id, last=seen[-1].entry_id))
        assert _text(resumed) == "".join(words)
        assert resumed[-1].type == "done"

    _run(test)


def test_a_late_viewer_gets_the_run_so_far_from_the_reader(run_id: int, quiet_checks: None) -> None:
    async def test() -> None:
        _publish(run_id, "token", {"text": "early "})
        first = _follow(run_id)
        await _read(first, 1)
        reader = streams.hub().readers[live.run_stream(run_id)]
        _publish(run_id, "token", {"text": "later"})
        await _read(first, 1)
        reads = reader.reads
        # A viewer that comes now is served from the reader's memory: no Redis read of its own.
        late = tail(_viewer(), runs={run_id: None},
                    snapshots={run_id: RunSnapshot(RunStatus.running, "", None, 1)})  # fmt: skip
        whole = await _read(late, 1)
        assert [(e.type, e.data) for e in whole] == [("text", {"text": "early later"})]
        assert reader.reads == reads
        _publish(run_id, "done", {"status": "succeeded"})
        assert [e.type for e in await _rest(late)] == ["done"]
        assert [e.type for e in await _rest(first)] == ["done"]

    _run(test)


def test_access_is_checked_for_every_viewer_at_once_and_ends_only_the_refused(
    run_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[list[int | None]] = []

    def allowed(viewers: list[Viewer]) -> list[bool]:
        checked.append([viewer.user.id for viewer in viewers])
        return [viewer.user.id != 2 for viewer in viewers]

    monkeypatch.setattr(streams, "allowed", allowed)
    monkeypatch.setattr(streams, "RECHECK_S", 0.05)

    async def test() -> None:
        _publish(run_id, "state", {"status": "running"})
        kept, removed = _follow(run_id, _viewer(1)), _follow(run_id, _viewer(2))
        await _read(kept, 1)
        await _read(removed, 1)
        assert await _rest(removed) == []  # its membership is gone: the stream ends
        assert sorted(checked[0]) == [1, 2]  # one check for both
        _publish(run_id, "token", {"text": "still here"})
        _publish(run_id, "done", {"status": "succeeded"})
        assert _text(await _rest(kept)) == "still here"

    _run(test)


def test_a_feed_viewer_resuming_from_before_the_readers_start_gets_every_entry(
    quiet_checks: None,
) -> None:
    workspace_id = next(_run_ids)
    key = live.workspace_stream(workspace_id)

    async def test() -> None:
        older = [
            live.append_workspace(get_redis(), workspace_id, "run", {"n": n}) for n in range(3)
        ]
        # A viewer from now starts the feed's reader after those three entries ...
        now = tail(_viewer(), feed=(workspace_id, None))
        reading = asyncio.ensure_future(anext(now))
        while key not in streams.hub().readers or not streams.hub().readers[key].loaded.is_set():
            await asyncio.sleep(0)
        # ... and one that resumes from the first gets the two after it, then what comes.
        resumed = tail(_viewer(), feed=(workspace_id, older[0]))
        got = [await anext(resumed), await anext(resumed)]
        live.append_workspace(get_redis(), workspace_id, "run", {"n": 3})
        got.append(await anext(resumed))
        assert [event.data["n"] for event in got] == [1, 2, 3]
        assert (await reading).data["n"] == 3
        await resumed.aclose()
        await now.aclose()
        assert key not in streams.hub().readers

    try:
        _run(test)
    finally:
        get_redis().delete(key)


def test_a_dropped_page_viewer_is_not_told_the_stream_ended() -> None:
    """A page's stream ends with ``live-end`` (its browser then stays closed), but not when the
    viewer was dropped for falling behind: that browser must reconnect and resume."""

    async def dropped() -> AsyncIterator[Any]:
        yield b"data: one\n\n"
        raise ViewerDropped()

    async def ended() -> AsyncIterator[Any]:
        yield b"data: one\n\n"

    async def sent(events: AsyncIterator[Any]) -> list[str]:
        response = streams.event_stream(events, page=True)
        return [getattr(item, "event", None) or "" async for item in response.body_iterator]

    assert streams.END_EVENT not in _run(lambda: sent(dropped()))
    assert streams.END_EVENT in _run(lambda: sent(ended()))


def test_the_event_source_overrides_a_send_sse_starlette_still_has() -> None:
    """``streams._EventSource`` replaces sse-starlette's private ``_send_with_timeout`` (to skip
    a cancel scope per event when no timeout is set); were it renamed upstream, the override
    would silently do nothing."""
    from sse_starlette import EventSourceResponse

    assert "_send_with_timeout" in vars(EventSourceResponse)
    assert streams.event_stream(_no_events()).send_timeout is None


async def _no_events() -> AsyncIterator[bytes]:
    return
    yield b""
