"""The dashboard pages: the workspace list and a workspace's overview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from sqlmodel import col, select
from starlette.responses import RedirectResponse, Response

from app.deps import CurrentUser, SessionDep, ViewableWorkspace
from app.models import Agent, Model, Task
from app.services import ServiceError
from app.services.demo import create_demo_workspace
from app.services.workspaces import create_workspace, role_in, workspaces_of
from app.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)

TASK_PAGE_SIZE = 50


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
    return RedirectResponse(f"/w/{workspace.slug}", status_code=303)


@router.post("/workspaces/demo")
def create_demo_page(session: SessionDep, user: CurrentUser) -> Response:
    workspace = create_demo_workspace(session=session, owner=user)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}", status_code=303)


@router.get("/w/{slug}")
def workspace_page(
    request: Request, session: SessionDep, user: CurrentUser, workspace: ViewableWorkspace
) -> Response:
    """A workspace: its agents and its tasks (newest first, one page at a time)."""
    agents = session.exec(
        select(Agent, Model)
        .join(Model, col(Model.id) == col(Agent.model_id), isouter=True)
        .where(Agent.workspace_id == workspace.id)
        .order_by(col(Agent.name))
    ).all()
    tasks = session.exec(
        select(Task)
        .where(Task.workspace_id == workspace.id)
        .order_by(col(Task.created_at).desc(), col(Task.id).desc())
        .limit(TASK_PAGE_SIZE)
    ).all()
    context = {
        "workspace": workspace,
        "role": role_in(session=session, workspace=workspace, user=user),
        "agents": agents,
        "tasks": tasks,
    }
    return render(request, "workspace.html", context)
