"""Tasks and the operations on their message trees: ask, fan out, fork, rerun, hand off."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import Field
from sqlmodel import SQLModel, col, select
from starlette.responses import Response

from app.engine import runs as operations
from app.engine.dispatch import dispatch
from app.engine.runs import Started
from app.models import Role, Task, TaskCreate, TaskDetail, TaskPublic, TaskUpdate
from app.routes.api.presenters import (
    StartedPublic,
    message_public,
    run_public,
    started_public,
)
from app.services import ServiceError
from app.services.access import message_for, task_for
from app.services.tags import clean_tags, set_tags, tags_of
from app.services.task_export import task_markdown, task_record
from app.services.tasks import create_task, messages_of, runs_of, update_task
from app.web.deps import CurrentUser, EditableWorkspace, SessionDep, ViewableWorkspace

router = APIRouter(tags=["tasks"])


class ReplyCreate(SQLModel):
    """A new user message under a message (or an edited copy of a user message, with
    ``edit: true``), answered by one agent or fanned out to several."""

    content: str = Field(min_length=1, max_length=100_000)
    agent_ids: list[int] = Field(default_factory=list, max_length=8)
    edit: bool = False


class RerunCreate(SQLModel):
    agent_id: int | None = None


class HandoffCreate(SQLModel):
    agent_id: int
    instruction: str = Field(min_length=1, max_length=100_000)


class FirstMessageCreate(SQLModel):
    content: str = Field(min_length=1, max_length=100_000)
    agent_ids: list[int] = Field(default_factory=list, max_length=8)


class AssigneeUpdate(SQLModel):
    agent_id: int | None


class TaskCreated(TaskPublic):
    started: StartedPublic | None = None


def task_public(session: SessionDep, task: Task) -> TaskPublic:
    tags = tags_of(session=session, task_ids=[task.id])[task.id]  # type: ignore[index]
    return TaskPublic.model_validate({**task.model_dump(), "tags": tags})


def _commit_and_dispatch(session: SessionDep, started: Started) -> StartedPublic:
    session.commit()
    queued = dispatch([run.id for run in started.runs if run.id is not None])
    return started_public(session, started, queued)


@router.get("/workspaces/{slug}/tasks", response_model=list[TaskPublic])
def list_tasks(
    access: ViewableWorkspace, session: SessionDep, limit: int = 100, offset: int = 0
) -> list[TaskPublic]:
    """Tasks, newest first, a page at a time."""
    workspace = access.workspace
    if not 1 <= limit <= 500 or offset < 0:
        raise ServiceError("limit is 1–500 and offset at least 0.")
    tasks = session.exec(
        select(Task)
        .where(Task.workspace_id == workspace.id)
        .order_by(col(Task.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    tags = tags_of(session=session, task_ids=[task.id for task in tasks])
    return [
        TaskPublic.model_validate({**task.model_dump(), "tags": tags[task.id]})  # type: ignore[index]
        for task in tasks
    ]


@router.post(
    "/workspaces/{slug}/tasks", response_model=TaskCreated, status_code=status.HTTP_201_CREATED
)
def create_task_api(
    body: TaskCreate, access: EditableWorkspace, session: SessionDep, user: CurrentUser
) -> TaskCreated:
    """Create a task; given agents (or an assignee), its brief is asked at once."""
    workspace = access.workspace
    tags = clean_tags(body.tags)
    task, started = create_task(
        session=session, workspace=workspace, author=user, title=body.title, brief=body.brief,
        assignee_agent_id=body.assignee_agent_id, agent_ids=body.agent_ids,
    )  # fmt: skip
    tags = set_tags(session=session, task=task, actor=user, tags=tags) if tags else []
    session.commit()
    result = _commit_and_dispatch(session, started) if started else None
    return TaskCreated.model_validate({**task.model_dump(), "tags": tags, "started": result})


@router.get("/tasks/{task_id}", response_model=TaskDetail)
def read_task(task_id: int, session: SessionDep, user: CurrentUser) -> TaskDetail:
    """A task with its whole message tree and its runs."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    return TaskDetail.model_validate(
        {
            **task_public(session, task).model_dump(),
            "messages": [message_public(m) for m in messages_of(session=session, task=task)],
            "runs": [run_public(session, r) for r in runs_of(session=session, task=task)],
        }
    )


@router.patch("/tasks/{task_id}", response_model=TaskPublic)
def update_task_api(
    task_id: int, body: TaskUpdate, session: SessionDep, user: CurrentUser
) -> TaskPublic:
    """Rename, re-brief, move between columns or positions, replace the tags."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    tags = clean_tags(body.tags) if body.tags is not None else None
    update_task(session=session, task=task, actor=user, **body.model_dump(exclude={"tags"}))
    if tags is not None:
        set_tags(session=session, task=task, actor=user, tags=tags)
    session.commit()
    return task_public(session, task)


@router.put("/tasks/{task_id}/assignee", response_model=TaskPublic)
def reassign_task(
    task_id: int, body: AssigneeUpdate, session: SessionDep, user: CurrentUser
) -> TaskPublic:
    """Reassign: the task's next runs go to this agent by default."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    operations.reassign(session=session, task=task, actor=user, agent_id=body.agent_id)
    session.commit()
    return task_public(session, task)


@router.post(
    "/tasks/{task_id}/messages", response_model=StartedPublic, status_code=status.HTTP_201_CREATED
)
def first_message(
    task_id: int, body: FirstMessageCreate, session: SessionDep, user: CurrentUser
) -> StartedPublic:
    """The task's first message, answered by the given agents (default: the assignee)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    started = operations.ask(
        session=session, task=task, author=user, content=body.content,
        agent_ids=body.agent_ids or None,
    )  # fmt: skip
    return _commit_and_dispatch(session, started)


@router.post(
    "/messages/{message_id}/replies",
    response_model=StartedPublic,
    status_code=status.HTTP_201_CREATED,
)
def reply(
    message_id: int, body: ReplyCreate, session: SessionDep, user: CurrentUser
) -> StartedPublic:
    """Ask, fan out, or fork from any message (``edit``: an edited sibling of a user message)."""
    message, task = message_for(
        session=session, message_id=message_id, user=user, min_role=Role.editor
    )
    agent_ids = body.agent_ids or None
    if body.edit:
        started = operations.fork_with_edit(
            session=session, task=task, author=user, message_id=message_id,
            content=body.content, agent_ids=agent_ids,
        )  # fmt: skip
    else:
        started = operations.ask(
            session=session, task=task, author=user, content=body.content,
            parent_id=message.id, agent_ids=agent_ids,
        )  # fmt: skip
    return _commit_and_dispatch(session, started)


@router.post(
    "/messages/{message_id}/reruns",
    response_model=StartedPublic,
    status_code=status.HTTP_201_CREATED,
)
def rerun(
    message_id: int, body: RerunCreate, session: SessionDep, user: CurrentUser
) -> StartedPublic:
    """Answer the same question again, with the same agent or another (a new sibling)."""
    _, task = message_for(session=session, message_id=message_id, user=user, min_role=Role.editor)
    started = operations.rerun(
        session=session, task=task, author=user, message_id=message_id, agent_id=body.agent_id
    )
    return _commit_and_dispatch(session, started)


@router.post(
    "/messages/{message_id}/handoffs",
    response_model=StartedPublic,
    status_code=status.HTTP_201_CREATED,
)
def hand_off(
    message_id: int, body: HandoffCreate, session: SessionDep, user: CurrentUser
) -> StartedPublic:
    """Hand an agent's answer to another agent with an instruction ("test this")."""
    _, task = message_for(session=session, message_id=message_id, user=user, min_role=Role.editor)
    started = operations.hand_off(
        session=session, task=task, author=user, message_id=message_id,
        agent_id=body.agent_id, instruction=body.instruction,
    )  # fmt: skip
    return _commit_and_dispatch(session, started)


@router.get("/tasks/{task_id}/export", response_model=None)
def export_task(
    task_id: int, session: SessionDep, user: CurrentUser, format: str = "json"
) -> Response | dict[str, object]:
    """The whole task — every branch, run, comparison and vote — as JSON or Markdown."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    if format not in ("json", "markdown"):
        raise ServiceError("Export as json or markdown.")
    record = task_record(session=session, task=task)
    if format == "json":
        return record
    return Response(
        task_markdown(record),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="task-{task.id}.md"'},
    )
