"""Server-sent events for scripts: a run's tokens and state, and a workspace's activity (JSON)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.engine.live import parse_stream_id
from app.web.streams import (
    LiveEvent,
    StreamUser,
    Viewer,
    connecting_viewer,
    event_stream,
    stream_credentials,
    tail,
    viewable_workspace_id,
)

router = APIRouter(tags=["live"])


@router.get(
    "/runs/{run_id}/events",
    summary="Live events of a run (SSE)",
    dependencies=[Depends(stream_credentials)],
)
async def run_events(
    run_id: int,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """``token``, ``state``, ``reset``, then ``done`` or ``error``; resumes after
    ``Last-Event-ID`` (one that came after the end gets the end again)."""
    # Signed in, and allowed to see the run (404 before the stream starts): one query.
    user, snapshot = await connecting_viewer(request, run_id)
    viewer = Viewer(request, user)
    start = parse_stream_id(last_event_id)
    runs = {run_id: start}

    async def events() -> AsyncIterator[ServerSentEvent | bytes]:
        following = tail(viewer, runs=runs, whole_text=False, snapshots={run_id: snapshot})
        async for event in following:
            yield _json_event(event)

    return event_stream(events())


@router.get("/workspaces/{slug}/events", summary="Live activity of a workspace (SSE)")
async def workspace_events(
    slug: str,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """State changes of the workspace's runs and tasks, from now (or after
    ``Last-Event-ID``), for as long as the caller stays a member."""
    workspace_id = await run_in_threadpool(viewable_workspace_id, user, slug)
    viewer = Viewer(request, user)
    feed = (workspace_id, parse_stream_id(last_event_id))

    async def events() -> AsyncIterator[ServerSentEvent | bytes]:
        async for event in tail(viewer, feed=feed):
            yield _json_event(event)

    return event_stream(events())


def _json_event(event: LiveEvent) -> ServerSentEvent | bytes:
    """The event with its data as JSON. An entry from Redis keeps its JSON, and its frame is
    encoded once for all the viewers of this process."""
    if event.raw is None or event.shared is None:
        return JSONServerSentEvent(event.data, event=event.type, id=event.entry_id)
    frame = event.shared.get("json")
    if frame is None:
        frame = ServerSentEvent(event.raw, event=event.type, id=event.entry_id).encode()
        event.shared["json"] = frame
    return frame
