"""Server-sent events for scripts: a run's tokens and state, and a workspace's activity (JSON)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from app.web.streams import (
    KEEP_ALIVE,
    SSE_HEADERS,
    StreamUser,
    run_entries,
    run_snapshot,
    sse,
    viewable_workspace_id,
    workspace_entries,
)

router = APIRouter(tags=["live"])


@router.get("/runs/{run_id}/events", summary="Live events of a run (SSE)")
async def run_events(
    run_id: int,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """``token``, ``state``, ``reset``, then ``done`` or ``error``; resumes after
    ``Last-Event-ID``."""
    entries = run_entries(request, user, run_id, last_event_id)
    await run_in_threadpool(run_snapshot, user, run_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        async for entry_id, type_, data in entries:
            yield ": keep-alive\n\n" if type_ == KEEP_ALIVE else sse(type_, data, entry_id)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/workspaces/{slug}/events", summary="Live activity of a workspace (SSE)")
async def workspace_events(
    slug: str,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """State changes of the workspace's runs and tasks, from now (or after
    ``Last-Event-ID``)."""
    workspace_id = await run_in_threadpool(viewable_workspace_id, user, slug)

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        async for entry_id, type_, data in workspace_entries(
            request, user, workspace_id, last_event_id
        ):
            yield ": keep-alive\n\n" if type_ == KEEP_ALIVE else sse(type_, data, entry_id)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
