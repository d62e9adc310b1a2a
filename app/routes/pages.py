"""The dashboard pages: the workspace list and a workspace's overview."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Form, Header, Request
from sqlmodel import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from app.db import get_engine
from app.engine import live
from app.engine.dispatch import dispatch
from app.engine.live import parse_stream_id
from app.models import Role, Run, Task, TaskStatus, User, Workspace
from app.models.common import utcnow
from app.redis_conn import get_redis
from app.services import NotFound, ServiceError, board
from app.services.access import require_role, task_for
from app.services.agents import agents_of
from app.services.checks import best_checks
from app.services.demo import create_demo_workspace
from app.services.tasks import create_task, update_task
from app.services.workspaces import (
    create_workspace,
    rename_workspace,
    workspaces_of,
)
from app.web.deps import (
    Access,
    CurrentUser,
    EditableWorkspace,
    OwnedWorkspace,
    SessionDep,
    ViewableWorkspace,
)
from app.web.forms import form_id, form_ids
from app.web.streams import (
    LiveEvent,
    StreamUser,
    Viewer,
    event_stream,
    tail,
    viewable_workspace_id,
)
from app.web.templating import render, templates, wants_fragment

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/")
def dashboard(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The workspaces this person belongs to, or what to do first."""
    return render(
        request, "dashboard.html", {"workspaces": workspaces_of(session=session, user=user)}
    )


@router.post("/workspaces")
def create_workspace_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    try:
        workspace = create_workspace(session=session, name=name, owner=user)
    except ServiceError as exc:
        session.rollback()
        context = {
            "workspaces": workspaces_of(session=session, user=user),
            "error": exc.message,
            "name": name,
        }
        return render(request, "dashboard.html", context, block="create_form", status_code=400)
    session.commit()
    if wants_fragment(request):
        # The form swaps itself; a new workspace is a new page, so tell htmx to go there.
        return Response(status_code=204, headers={"HX-Redirect": f"/w/{workspace.slug}"})
    return RedirectResponse(f"/w/{workspace.slug}", status_code=303)


@router.post("/workspaces/demo")
def create_demo_page(session: SessionDep, user: CurrentUser) -> Response:
    demo = create_demo_workspace(session=session, owner=user)
    session.commit()
    if demo.started is None:  # no model yet: the board, which says so
        return RedirectResponse(f"/w/{demo.workspace.slug}", status_code=303)
    dispatch([run.id for run in demo.started.runs if run.id is not None])
    return RedirectResponse(f"/t/{demo.task.id}", status_code=303)


def _cards_context(session: Session, access: Access, cols: list[board.Column]) -> dict[str, Any]:
    """What the cards of ``cols`` need: agents, live and failed runs, checks."""
    workspace, role = access
    shown = [task.id for c in cols for task in c.tasks]
    agents = board.agents_with_models(session=session, workspace=workspace)
    return {
        "workspace": workspace,
        "role": role,
        "can_edit": role.allows(Role.editor),
        "columns": cols,
        "active": board.active_runs(session=session, task_ids=shown),
        "failed": board.failed_tasks(session=session, task_ids=shown),
        "best_checks": best_checks(session=session, task_ids=shown),
        "agents": agents,
        "agents_by_id": {row.agent.id: row.agent for row in agents},
    }


def _board_context(
    session: Session, access: Access, cols: list[board.Column] | None = None
) -> dict[str, Any]:
    workspace, _ = access
    if cols is None:
        cols = board.columns(session=session, workspace=workspace)
    return {
        **_cards_context(session, access, cols),
        "has_tasks": any(c.total for c in cols),
        "feed": board.feed_lines(session=session, workspace=workspace),
        "form": {},
        "live_url": f"/w/{workspace.slug}/live",
    }


@router.get("/w/{slug}")
def workspace_page(
    request: Request, session: SessionDep, user: CurrentUser, access: ViewableWorkspace
) -> Response:
    """The board: tasks in columns, agents and their models, live activity."""
    return render(request, "workspace.html", _board_context(session, access))


@router.get("/w/{slug}/column/{status}")
def column_page(
    request: Request,
    status: TaskStatus,
    session: SessionDep,
    user: CurrentUser,
    access: ViewableWorkspace,
    offset: int = 0,
) -> Response:
    """More tasks of one column (the board shows a page at a time): the next cards for the
    board's "Show more", or (a plain link, without JavaScript) the board with that column at
    this page."""
    column = board.column(
        session=session, workspace=access.workspace, status=status, offset=max(offset, 0)
    )
    if wants_fragment(request):
        context = {**_cards_context(session, access, [column]), "column": column}
        return render(request, "workspace.html", context, block="column_items")
    cols = [
        column if c.status == status else c
        for c in board.columns(session=session, workspace=access.workspace)
    ]
    return render(request, "workspace.html", _board_context(session, access, cols))


@router.post("/w/{slug}/tasks")
def create_task_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: EditableWorkspace,
    title: Annotated[str, Form(max_length=200)],
    brief: Annotated[str, Form(max_length=100_000)] = "",
    assignee_agent_id: Annotated[str, Form()] = "",
    agent_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    workspace = access.workspace
    try:
        chosen = form_ids(agent_ids, "Pick agents from the list.")
        assignee = (
            form_id(assignee_agent_id, "Pick an assignee from the list.")
            if assignee_agent_id.strip()
            else None
        )
        task, started = create_task(
            session=session, workspace=workspace, author=user, title=title, brief=brief,
            assignee_agent_id=assignee, agent_ids=chosen or None,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        context = {**_board_context(session, access), "error": exc.message,
                   "form": {"title": title, "brief": brief}}  # fmt: skip
        return render(request, "workspace.html", context, status_code=400)
    session.commit()
    if started:
        dispatch([run.id for run in started.runs if run.id is not None])
    return RedirectResponse(f"/t/{task.id}", status_code=303)


@router.post("/w/{slug}/rename")
def rename_workspace_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: OwnedWorkspace,
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    workspace = access.workspace
    try:
        rename_workspace(session=session, workspace=workspace, actor=user, name=name)
    except ServiceError as exc:
        session.rollback()
        context = {**_board_context(session, access), "error": exc.message}
        return render(request, "workspace.html", context, status_code=400)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}", status_code=303)


@router.post("/t/{task_id}/move")
def move_task_page(
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    status: Annotated[TaskStatus, Form()],
) -> Response:
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    update_task(session=session, task=task, actor=user, status=status)
    session.commit()
    workspace = session.get(Workspace, task.workspace_id)
    assert workspace is not None
    # Every board open on this workspace moves the card too (best effort: the move is saved).
    with contextlib.suppress(redis.RedisError):
        live.append_workspace(get_redis(), workspace.id, "task", {"task_id": task.id})  # type: ignore[arg-type]
    return RedirectResponse(f"/w/{workspace.slug}", status_code=303)


# --- the board's live activity feed over SSE ------------------------------------------------


def _activity_line(workspace_id: int, data: dict[str, Any]) -> str:
    """One feed line for a run's state change: the agent, what happened, the task, when."""
    with Session(get_engine()) as session:
        line = board.run_line(
            session=session, workspace_id=workspace_id, run_id=int(data.get("id") or 0),
            status=str(data.get("status", "")),
            at=utcnow(),
        )  # fmt: skip
        return templates.get_template("_activity.html").render(line=line) if line else ""


def _card(user: User, workspace_id: int, event: LiveEvent) -> str:
    """The card of the task an event is about, as it is now (for this viewer's role), or ""."""
    with Session(get_engine()) as session:
        task_id = event.data.get("task_id")
        if task_id is None and event.type == "run":
            run = session.get(Run, int(event.data.get("id") or 0))
            task_id = run.task_id if run else None
        task = session.get(Task, int(task_id)) if task_id else None
        if task is None or task.workspace_id != workspace_id:
            return ""  # gone, or another workspace's: a board never shows it
        try:
            role = require_role(session=session, workspace_id=workspace_id, user=user,
                                min_role=Role.viewer)  # fmt: skip
        except NotFound:
            return ""  # no longer a member: the stream ends at its next check
        ids = [task.id] if task.id is not None else []
        context = {
            "task": task,
            "agents_by_id": {
                a.id: a for a in agents_of(session=session, workspace_id=workspace_id)
            },
            "active": board.active_runs(session=session, task_ids=ids),
            "failed": board.failed_tasks(session=session, task_ids=ids),
            "best_checks": best_checks(session=session, task_ids=ids),
            "can_edit": role.allows(Role.editor),
        }
        return templates.get_template("_task_card.html").render(**context)


@router.get("/w/{slug}/live")
async def workspace_live(
    slug: str,
    request: Request,
    user: StreamUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The board's live stream, from now on (or after ``Last-Event-ID``), for as long as the
    viewer stays signed in and a member: an ``activity`` line per run state change, and the
    ``card`` of each task whose run or column changed."""
    workspace_id = await run_in_threadpool(viewable_workspace_id, user, slug)
    viewer = Viewer(request, user)
    feed = (workspace_id, parse_stream_id(last_event_id))

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for event in tail(viewer, feed=feed):
            if event.type == "run":
                line = await run_in_threadpool(_activity_line, workspace_id, event.data)
                if line:
                    yield ServerSentEvent(line, event="activity", id=event.entry_id)
            if event.type in ("run", "task"):
                card = await run_in_threadpool(_card, user, workspace_id, event)
                if card:
                    yield ServerSentEvent(card, event="card", id=event.entry_id)

    return event_stream(events(), page=True)
