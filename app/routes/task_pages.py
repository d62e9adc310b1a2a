"""The task page: one branch of the message tree, its live runs, and every operation on it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlmodel import Session, col, select
from starlette.responses import RedirectResponse, Response

from app.deps import CurrentUser, SessionDep
from app.dispatch import announce_cancel, dispatch, dispatch_retry
from app.models import Agent, Pipeline, Role, RunStatus, Task, User, Workspace
from app.services import ServiceError
from app.services import runs as operations
from app.services.access import message_for, require_role, run_for, task_for
from app.services.runs import Started, queue_position
from app.services.threads import branch, tree
from app.templating import render, templates

router = APIRouter(tags=["pages"], include_in_schema=False)

# A branch shows its newest messages; earlier ones load on demand, this many at a time.
WINDOW = 40


def _agents(session: Session, workspace_id: int) -> list[Agent]:
    return list(
        session.exec(
            select(Agent).where(Agent.workspace_id == workspace_id).order_by(col(Agent.name))
        ).all()
    )


def task_context(
    session: Session, task: Task, user: User, at: int | None, upto: int | None = None
) -> dict[str, Any]:
    role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                        min_role=Role.viewer)  # fmt: skip
    shown = branch(session=session, task=task, at=at)
    end = len(shown.messages) if upto is None else max(0, min(upto, len(shown.messages)))
    agents = _agents(session, task.workspace_id)
    positions = {
        message_id: queue_position(session=session, run=run)
        for message_id, run in shown.runs.items()
    }
    # Offer a comparison where a question has several answers on this branch.
    compare_question = next(
        (m.id for m in reversed(shown.messages)
         if m.role == "user" and shown.children_count.get(m.id or 0, 0) > 1),
        None,
    )  # fmt: skip
    return {
        "task": task,
        "workspace": session.get(Workspace, task.workspace_id),
        "branch": shown,
        "agents": agents,
        "agents_by_id": {a.id: a for a in agents},
        "can_edit": role.allows(Role.editor),
        "positions": positions,
        "compare_question": compare_question,
        "window_start": max(end - WINDOW, 0),
        "window_end": end,
        "pipelines": session.exec(
            select(Pipeline)
            .where(Pipeline.workspace_id == task.workspace_id)
            .order_by(col(Pipeline.name))
        ).all(),
    }


@router.get("/t/{task_id}")
def task_page(
    request: Request,
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    at: int | None = None,
    upto: int | None = None,
) -> Response:
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    context = task_context(session, task, user, at, upto)
    return render(request, "task.html", context, block="thread")


@router.get("/t/{task_id}/earlier")
def earlier_messages(
    request: Request, task_id: int, at: int, upto: int, session: SessionDep, user: CurrentUser
) -> Response:
    """The messages of a branch before the ones shown (a window at a time)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    context = task_context(session, task, user, at, upto)
    return render(request, "task.html", context, block="window")


def _after(session: Session, task: Task, started: Started, user: User, request: Request,
           draft: str = "") -> Response:  # fmt: skip
    """Commit, dispatch, and show the branch the operation created."""
    session.commit()
    dispatch([run.id for run in started.runs if run.id is not None])
    target = started.runs[-1].output_message_id if started.runs else None
    return RedirectResponse(f"/t/{task.id}?at={target}", status_code=303)


def _refused(
    session: Session, request: Request, task: Task, user: User, error: ServiceError,
    at: int | None, draft: str = "",
) -> Response:  # fmt: skip
    session.rollback()
    context = {**task_context(session, task, user, at), "error": error.message, "draft": draft}
    return render(request, "task.html", context, status_code=error.status_code)


def _agent_ids(values: list[str]) -> list[int]:
    try:
        return [int(value) for value in values if value]
    except ValueError:
        raise ServiceError("Pick agents from the list.") from None


@router.post("/t/{task_id}/ask")
def ask_page(
    request: Request,
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    content: Annotated[str, Form(max_length=100_000)],
    parent_id: Annotated[int | None, Form()] = None,
    agent_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    try:
        started = operations.ask(
            session=session, task=task, author=user, content=content, parent_id=parent_id,
            agent_ids=_agent_ids(agent_ids or []) or None,
        )  # fmt: skip
    except ServiceError as exc:
        return _refused(session, request, task, user, exc, parent_id, content)
    return _after(session, task, started, user, request)


def _message_operation(
    request: Request, session: Session, user: User, message_id: int, operation: Any,
    **arguments: Any,
) -> Response:  # fmt: skip
    message, task = message_for(
        session=session, message_id=message_id, user=user, min_role=Role.editor
    )
    try:
        started = operation(session=session, task=task, author=user, message_id=message_id,
                            **arguments)  # fmt: skip
    except ServiceError as exc:
        return _refused(session, request, task, user, exc, message_id)
    return _after(session, task, started, user, request)


@router.get("/t/{task_id}/tree")
def tree_fragment(
    request: Request, task_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """All branches of the task as a compact tree (loaded when the tree view opens)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    agents = {a.id: a for a in session.exec(
        select(Agent).where(Agent.workspace_id == task.workspace_id)
    ).all()}  # fmt: skip
    context = {"task": task, "roots": tree(session=session, task=task), "agents_by_id": agents}
    return templates.TemplateResponse(request, "_tree.html", context)


@router.get("/m/{message_id}/actions")
def message_actions(
    request: Request, message_id: int, session: SessionDep, user: CurrentUser
) -> Response:
    """The forms of one message (fork, edit, rerun, hand off), loaded when its menu opens."""
    message, task = message_for(
        session=session, message_id=message_id, user=user, min_role=Role.editor
    )
    context = task_context(session, task, user, message_id)
    context.update(message=message, run=context["branch"].runs.get(message_id))
    return templates.TemplateResponse(request, "_actions.html", context)


@router.post("/m/{message_id}/reply")
def fork_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    content: Annotated[str, Form(max_length=100_000)],
    agent_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def ask_under(**kwargs: Any) -> Started:
        kwargs["parent_id"] = kwargs.pop("message_id")
        return operations.ask(**kwargs)

    return _message_operation(
        request, session, user, message_id, ask_under, content=content,
        agent_ids=_agent_ids(agent_ids or []) or None,
    )  # fmt: skip


@router.post("/m/{message_id}/edit")
def edit_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    content: Annotated[str, Form(max_length=100_000)],
    agent_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    return _message_operation(
        request, session, user, message_id, operations.fork_with_edit, content=content,
        agent_ids=_agent_ids(agent_ids or []) or None,
    )  # fmt: skip


@router.post("/m/{message_id}/rerun")
def rerun_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_id: Annotated[int | None, Form()] = None,
) -> Response:
    return _message_operation(
        request, session, user, message_id, operations.rerun, agent_id=agent_id
    )


@router.post("/m/{message_id}/handoff")
def handoff_page(
    request: Request,
    message_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_id: Annotated[int, Form()],
    instruction: Annotated[str, Form(max_length=100_000)],
) -> Response:
    return _message_operation(
        request, session, user, message_id, operations.hand_off, agent_id=agent_id,
        instruction=instruction,
    )  # fmt: skip


@router.post("/t/{task_id}/assignee")
def reassign_page(
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    agent_id: Annotated[str, Form()] = "",
) -> Response:
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    chosen = int(agent_id) if agent_id.isdigit() else None
    operations.reassign(session=session, task=task, actor=user, agent_id=chosen)
    session.commit()
    return RedirectResponse(f"/t/{task.id}", status_code=303)


@router.post("/r/{run_id}/cancel")
def cancel_page(run_id: int, session: SessionDep, user: CurrentUser) -> Response:
    run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.editor)
    if run.status in (RunStatus.queued, RunStatus.running):
        operations.cancel(session=session, run=run, actor=user)
        session.commit()
        announce_cancel(run)
    return RedirectResponse(f"/t/{task.id}?at={run.output_message_id}", status_code=303)


@router.post("/r/{run_id}/retry")
def retry_page(run_id: int, session: SessionDep, user: CurrentUser) -> Response:
    run, task = run_for(session=session, run_id=run_id, user=user, min_role=Role.editor)
    if run.status in (RunStatus.failed, RunStatus.cancelled):
        operations.retry(session=session, run=run, actor=user)
        session.commit()
        dispatch_retry(run_id)
    return RedirectResponse(f"/t/{task.id}?at={run.output_message_id}", status_code=303)
