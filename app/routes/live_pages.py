"""Live pages over SSE for htmx's SSE extension: HTML fragments, never JSON.

A run card appends escaped tokens as they stream and is replaced by the finished card; the
board's activity feed prepends one line per event. Both resume with ``Last-Event-ID``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from app.db import get_engine
from app.models import Message, Role, Task, User
from app.routes.streams import (
    KEEP_ALIVE,
    SSE_HEADERS,
    StreamUser,
    run_entries,
    viewable_workspace_id,
    workspace_entries,
)
from app.routes.task_pages import task_context
from app.services.access import run_for
from app.services.runs import queue_position
from app.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)


def _card(user: User, run_id: int, after: str | None = None) -> str:
    """The message card of a run as it is now in SQL (live ones resume after ``after``)."""
    with Session(get_engine()) as session:
        run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
        message = session.get(Message, run.output_message_id)
        context = task_context(session, task, user, run.output_message_id)
        context.update(
            message=message, run=run, siblings=context["branch"].siblings,
            position=queue_position(session=session, run=run), live_after=after,
        )  # fmt: skip
        return templates.get_template("_message.html").render(context)


def _state(user: User, run_id: int) -> str:
    with Session(get_engine()) as session:
        run, _ = run_for(session=session, run_id=run_id, user=user, min_role=Role.viewer)
        position = queue_position(session=session, run=run)
        return templates.get_template("_run_state.html").render(run=run, position=position)


def html_event(event: str, html: str, event_id: str | None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    data = "".join(f"data: {line}\n" for line in html.split("\n"))
    return f"{head}event: {event}\n{data}\n"


@router.get("/runs/{run_id}/live")
async def run_live(
    run_id: int,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
    after: str | None = None,
) -> StreamingResponse:
    """A run for htmx's SSE extension: escaped text to append, and the finished card."""
    await run_in_threadpool(_state, user, run_id)  # 404 before streaming
    start = last_event_id or after

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        async for entry_id, type_, data in run_entries(request, user, run_id, start):
            if type_ == KEEP_ALIVE:
                yield ": keep-alive\n\n"
            elif type_ == "token":
                yield html_event("token", escape(data.get("text", "")), entry_id)
            elif type_ == "state":
                yield html_event("state", await run_in_threadpool(_state, user, run_id), entry_id)
            elif type_ in ("done", "error", "reset"):
                # The card replaces the live element; after a reset (a new attempt) its new
                # live element reconnects from this event on, not from the start.
                after_reset = entry_id if type_ == "reset" else None
                card = await run_in_threadpool(_card, user, run_id, after_reset)
                yield html_event(type_, card, entry_id)
                return

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def _activity_line(user: User, data: dict[str, Any]) -> str:
    """One feed line for a run's state change."""
    with Session(get_engine()) as session:
        task = session.get(Task, data.get("task_id")) if data.get("task_id") else None
        title = f" on “{escape(task.title)}”" if task else ""
        link = f' · <a href="/t/{task.id}">task</a>' if task else ""
    status = escape(str(data.get("status", "")))
    return f'<li class="small">Run #{int(data.get("id", 0))} {status}{title}{link}</li>'


@router.get("/w/{slug}/live")
async def workspace_live(
    slug: str,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The board's activity feed, one line per run state change, from now on."""

    workspace_id = await run_in_threadpool(viewable_workspace_id, user, slug)

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        async for entry_id, type_, data in workspace_entries(
            request, user, workspace_id, last_event_id
        ):
            if type_ == KEEP_ALIVE:
                yield ": keep-alive\n\n"
            else:
                line = await run_in_threadpool(_activity_line, user, data)
                yield html_event("activity", line, entry_id)

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
