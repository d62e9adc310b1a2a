"""Tasks on a workspace's board."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from app.engine.runs import Started, ask, reassign
from app.models import Agent, Message, Run, Task, TaskStatus, User, Workspace
from app.models.common import utcnow
from app.services import NotFound, ServiceError
from app.services.workspaces import record_event


def create_task(
    *,
    session: Session,
    workspace: Workspace,
    author: User,
    title: str,
    brief: str = "",
    assignee_agent_id: int | None = None,
    agent_ids: list[int] | None = None,
) -> tuple[Task, Started | None]:
    """A task on the board; its brief is asked at once when agents are given or assigned."""
    title = title.strip()
    if not title:
        raise ServiceError("Give the task a title.")
    if assignee_agent_id is not None:
        assignee = session.get(Agent, assignee_agent_id)
        if assignee is None or assignee.workspace_id != workspace.id:
            raise NotFound("No such agent in this workspace.")
    top = session.exec(
        select(func.max(Task.position)).where(Task.workspace_id == workspace.id)
    ).one()
    task = Task(
        workspace_id=workspace.id,  # type: ignore[arg-type]
        title=title,
        brief=brief.strip(),
        assignee_agent_id=assignee_agent_id,
        position=(top or 0) + 1,
        created_by_id=author.id,
    )
    session.add(task)
    session.flush()
    if assignee_agent_id is not None:
        reassign(session=session, task=task, actor=author, agent_id=assignee_agent_id)
    record_event(
        session=session, workspace_id=task.workspace_id, actor=author, verb="created",
        subject_type="task", subject_id=task.id, data={"title": title},
    )  # fmt: skip
    started = None
    if agent_ids or assignee_agent_id is not None:
        content = task.brief or task.title
        started = ask(session=session, task=task, author=author, content=content,
                      agent_ids=agent_ids or None)  # fmt: skip
    return task, started


def update_task(*, session: Session, task: Task, actor: User, **fields: object) -> Task:
    for name in ("title", "brief", "position"):
        if fields.get(name) is not None:
            setattr(task, name, fields[name])
    if fields.get("status") is not None and fields["status"] != task.status:
        task.status = TaskStatus(str(fields["status"]))
        record_event(
            session=session, workspace_id=task.workspace_id, actor=actor, verb="moved",
            subject_type="task", subject_id=task.id, data={"status": task.status},
        )  # fmt: skip
    if not task.title.strip():
        raise ServiceError("Give the task a title.")
    task.updated_at = utcnow()
    session.add(task)
    session.flush()
    return task


def messages_of(*, session: Session, task: Task) -> list[Message]:
    return list(
        session.exec(
            select(Message).where(Message.task_id == task.id).order_by(col(Message.id))
        ).all()
    )


def runs_of(*, session: Session, task: Task) -> list[Run]:
    return list(session.exec(select(Run).where(Run.task_id == task.id).order_by(col(Run.id))).all())
