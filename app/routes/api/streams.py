"""Server-sent events for scripts: a run's tokens and state, and a workspace's activity (JSON)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from app.engine.live import parse_stream_id
from app.web.streams import (
    StreamUser,
    Viewer,
    event_stream,
    run_snapshot,
    tail,
    viewable_workspace_id,
)

router = APIRouter(tags=["live"])


@router.get("/runs/{run_id}/events", summary="Live events of a run (SSE)")
async def run_events(
    run_id: int,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """``token``, ``state``, ``reset``, then ``done`` or ``error``; resumes after
    ``Last-Event-ID`` (one that came after the end gets the end again)."""
    await run_in_threadpool(run_snapshot, user, run_id)  # 404 before the stream starts
    viewer = Viewer(request, user)
    start = parse_stream_id(last_event_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for event in tail(viewer, runs={run_id: start}, whole_text=False):
            yield JSONServerSentEvent(event.data, event=event.type, id=event.entry_id)

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

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for event in tail(viewer, feed=feed):
            yield JSONServerSentEvent(event.data, event=event.type, id=event.entry_id)

    return event_stream(events())
