"""Pipelines: define, edit and delete them per workspace; start one on a task's branch (from
the task's page, or from the list on a task's newest branch).

A mistake shows the form it was made in again, open, with what was typed and the message next
to it; a save redirects (post/redirect/get) to the list with ``?saved=<id>``, which it confirms."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session, col, select
from starlette.responses import RedirectResponse, Response

from app.engine.dispatch import announce_cancel, dispatch
from app.engine.pipelines import (
    MAX_STEPS,
    create_pipeline,
    delete_pipeline,
    start_pipeline,
    stop_pipeline,
    update_pipeline,
)
from app.models import Pipeline, Role, Task, Workspace
from app.services import ServiceError
from app.services.access import pipeline_for, require_role, task_for
from app.services.agents import agents_of
from app.services.threads import branch
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
    tasks = session.exec(
        select(Task).where(Task.workspace_id == workspace.id)
        .order_by(col(Task.updated_at).desc(), col(Task.id).desc()).limit(50)
    ).all()  # fmt: skip
    return {
        "workspace": workspace,
        "agents": agents,
        "agents_by_id": {a.id: a for a in agents},
        "pipelines": pipelines,
        "tasks": tasks,
        "can_edit": role.allows(Role.editor),
        "max_steps": MAX_STEPS,
        "form": {},
        "error_for": None,
        "saved": None,
    }


@router.get("/w/{slug}/pipelines")
def pipelines_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    access: ViewableWorkspace,
    saved: str = "",
) -> Response:
    context = _context(session, access)
    context["saved"] = next((p for p in context["pipelines"] if str(p.id) == saved), None)
    return render(request, "pipelines.html", context)


def _steps(
    step_agent: list[str] | None, step_instruction: list[str] | None
) -> list[dict[str, Any]]:
    """The steps with an agent chosen, in order (the form has one row per possible step)."""
    agents = step_agent or []
    instructions = (step_instruction or []) + [""] * len(agents)
    return [
        {"agent_id": form_id(agent, "Pick each step's agent from the list."),
         "instruction": instruction}
        for agent, instruction in zip(agents, instructions, strict=False)
        if agent.strip()
    ]  # fmt: skip


def _typed(
    name: str, step_agent: list[str] | None, step_instruction: list[str] | None,
    max_rounds: int, stop_word: str, run_checks: bool, stop_when_checks_pass: bool,
) -> dict[str, Any]:  # fmt: skip
    """The form as typed, to show it again after a mistake."""
    instructions = step_instruction or []
    return {
        "name": name,
        "steps": [
            {"agent_id": agent, "instruction": instructions[n] if n < len(instructions) else ""}
            for n, agent in enumerate(step_agent or [])
        ],
        "max_rounds": max_rounds, "stop_word": stop_word, "run_checks": run_checks,
        "stop_when_checks_pass": stop_when_checks_pass,
    }  # fmt: skip


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
    try:
        pipeline = create_pipeline(
            session=session, workspace_id=workspace.id, author=user, name=name,  # type: ignore[arg-type]
            steps=_steps(step_agent, step_instruction), max_rounds=max_rounds,
            stop_word=stop_word, run_checks=run_checks,
            stop_when_checks_pass=stop_when_checks_pass,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        typed = _typed(name, step_agent, step_instruction, max_rounds, stop_word, run_checks,
                       stop_when_checks_pass)  # fmt: skip
        context = {**_context(session, access), "error": exc.message, "form": typed,
                   "error_for": "new"}  # fmt: skip
        return render(request, "pipelines.html", context, status_code=exc.status_code)
    session.commit()
    return RedirectResponse(f"/w/{workspace.slug}/pipelines?saved={pipeline.id}", status_code=303)


def _access(session: Session, pipeline: Pipeline, user: Any) -> Access:
    workspace = session.get(Workspace, pipeline.workspace_id)
    assert workspace is not None
    role = require_role(session=session, workspace_id=pipeline.workspace_id, user=user,
                        min_role=Role.editor)  # fmt: skip
    return Access(workspace, role)


@router.post("/pipelines/{pipeline_id}")
def update_pipeline_page(
    request: Request,
    pipeline_id: int,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=120)],
    step_agent: Annotated[list[str] | None, Form()] = None,
    step_instruction: Annotated[list[str] | None, Form()] = None,
    max_rounds: Annotated[int, Form(ge=1, le=10)] = 1,
    stop_word: Annotated[str, Form(max_length=40)] = "",
    run_checks: Annotated[bool, Form()] = False,
    stop_when_checks_pass: Annotated[bool, Form()] = False,
) -> Response:
    pipeline = pipeline_for(session=session, pipeline_id=pipeline_id, user=user,
                            min_role=Role.editor)  # fmt: skip
    access = _access(session, pipeline, user)
    try:
        update_pipeline(
            session=session, pipeline=pipeline, name=name,
            steps=_steps(step_agent, step_instruction), max_rounds=max_rounds,
            stop_word=stop_word, run_checks=run_checks,
            stop_when_checks_pass=stop_when_checks_pass,
        )  # fmt: skip
    except ServiceError as exc:
        session.rollback()
        typed = _typed(name, step_agent, step_instruction, max_rounds, stop_word, run_checks,
                       stop_when_checks_pass)  # fmt: skip
        context = {**_context(session, access), "error": exc.message, "form": typed,
                   "error_for": str(pipeline_id)}  # fmt: skip
        return render(request, "pipelines.html", context, status_code=exc.status_code)
    session.commit()
    slug = access.workspace.slug
    return RedirectResponse(f"/w/{slug}/pipelines?saved={pipeline_id}", status_code=303)


@router.post("/pipelines/{pipeline_id}/delete")
def delete_pipeline_page(pipeline_id: int, session: SessionDep, user: CurrentUser) -> Response:
    pipeline = pipeline_for(session=session, pipeline_id=pipeline_id, user=user,
                            min_role=Role.editor)  # fmt: skip
    slug = _access(session, pipeline, user).workspace.slug
    delete_pipeline(session=session, pipeline=pipeline, actor=user)
    session.commit()
    return RedirectResponse(f"/w/{slug}/pipelines", status_code=303)


@router.post("/pipelines/{pipeline_id}/start")
def start_from_list_page(
    request: Request,
    pipeline_id: int,
    session: SessionDep,
    user: CurrentUser,
    task_id: Annotated[str, Form()] = "",
) -> Response:
    """Start a pipeline on a task's newest branch, from the list."""
    pipeline = pipeline_for(session=session, pipeline_id=pipeline_id, user=user,
                            min_role=Role.editor)  # fmt: skip
    access = _access(session, pipeline, user)
    try:
        task = task_for(session=session, task_id=form_id(task_id, "Pick a task from the list."),
                        user=user, min_role=Role.editor)  # fmt: skip
        if task.workspace_id != pipeline.workspace_id:
            raise ServiceError("Pick a task of this workspace.")
        leaf = branch(session=session, task=task).leaf
        if leaf is None or leaf.id is None:
            raise ServiceError(f"“{task.title}” has no message yet: ask its first question.")
        started = start_pipeline(
            session=session, task=task, pipeline=pipeline, author=user, message_id=leaf.id
        )
    except ServiceError as exc:
        session.rollback()
        context = {**_context(session, access), "error": exc.message,
                   "error_for": f"start-{pipeline_id}"}  # fmt: skip
        return render(request, "pipelines.html", context, status_code=exc.status_code)
    session.commit()
    dispatch([run.id for run in started.runs if run.id is not None])
    target = started.runs[-1].output_message_id if started.runs else leaf.id
    return RedirectResponse(f"/t/{task.id}?at={target}", status_code=303)


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
