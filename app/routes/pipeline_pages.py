"""Pipelines: define them per workspace, start one on a task's branch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session, col, select
from starlette.responses import RedirectResponse, Response

from app.engine.dispatch import announce_cancel, dispatch
from app.engine.pipelines import create_pipeline, start_pipeline, stop_pipeline
from app.models import Pipeline, Role
from app.services import ServiceError
from app.services.access import pipeline_for, task_for
from app.services.agents import agents_of
from app.web.deps import Access, CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace
from app.web.forms import form_id
from app.web.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


def _context(session: Session, access: Access) -> dict[str, Any]:
    workspace, role = access
    agents = agents_of(session=session, workspace_id=workspace.id)  # type: ignore[arg-type]
    pipelines = session.exec(
        select(Pipeline).where(Pipeline.workspace_id == workspace.id).order_by(col(Pipeline.name))
    ).all()
    return {
        "workspace": workspace,
        "agents": agents,
        "agents_by_id": {a.id: a for a in agents},
        "pipelines": pipelines,
        "can_edit": role.allows(Role.editor),
        "form": {},
    }


@router.get("/w/{slug}/pipelines")
def pipelines_page(
    request: Request, session: SessionDep, user: CurrentUser, access: ViewableWorkspace
) -> Response:
    return render(request, "pipelines.html", _context(session, access))


@router.post("/w/{slug}/pipelines")
def create_pipeline_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: EditableWorkspace,
    name: Annotated[str, Form(max_length=120)],
    step_agent: Annotated[list[str] | None, Form()] = None,
    step_instruction: Annotated[list[str] | None, Form()] = None,
    max_rounds: Annotated[int, Form(ge=1, le=10)] = 1,
    stop_word: Annotated[str, Form(max_length=40)] = "",
    run_checks: Annotated[bool, Form()] = False,
    stop_when_checks_pass: Annotated[bool, Form()] = False,
) -> Response:
    workspace = access.workspace
    agents = step_agent or []
    instructions = (step_instruction or []) + [""] * len(agents)
    try:
        steps = [
            {"agent_id": form_id(agent, "Pick each step's agent from the list."),
             "instruction": instruction}
            for agent, instruction in zip(agents, instructions, strict=False)
            if agent.strip()
        ]  # fmt: skip
        create_pipeline(
            session=session, workspace_id=workspace.id, author=user, name=name,  # type: ignore[arg-type]
            steps=steps, max_rounds=max_rounds, stop_word=stop_word, run_checks=run_checks,
            stop_when_checks_pass=stop_when_checks_pass,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        context = {**_context(session, access), "error": exc.message,
                   "form": {"name": name}}  # fmt: skip
        return render(request, "pipelines.html", context, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/pipelines", status_code=303)


@router.post("/t/{task_id}/pipeline")
def start_pipeline_page(
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    pipeline_id: Annotated[int, Form()],
    message_id: Annotated[int, Form()],
) -> Response:
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    pipeline = pipeline_for(session=session, pipeline_id=pipeline_id, user=user,
                            min_role=Role.editor)  # fmt: skip
    started = start_pipeline(
        session=session, task=task, pipeline=pipeline, author=user, message_id=message_id
    )
    session.commit()
    dispatch([run.id for run in started.runs if run.id is not None])
    target = started.runs[-1].output_message_id if started.runs else message_id
    return RedirectResponse(f"/t/{task.id}?at={target}", status_code=303)


@router.post("/t/{task_id}/pipeline/stop")
def stop_pipeline_page(task_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """Stop the task's running pipeline and its current step."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    cancelled = stop_pipeline(session=session, task=task, actor=user)
    session.commit()
    for run in cancelled:
        announce_cancel(run)
    at = cancelled[-1].output_message_id if cancelled else None
    return RedirectResponse(f"/t/{task.id}" + (f"?at={at}" if at else ""), status_code=303)
