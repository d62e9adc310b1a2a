"""Tags on tasks: short labels (``parsing``, ``sql``) that filter the leaderboard."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlmodel import Session, col, select

from app.models import Task, TaskTag, User
from app.services import ServiceError
from app.services.workspaces import record_event

MAX_TAGS = 8
_TAG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def clean_tags(raw: str | Iterable[str]) -> list[str]:
    """Tags as given (a list, or one string separated by commas or spaces): lower-cased, each
    once, in order; a clear message for one that is not a short word."""
    words = re.split(r"[,\s]+", raw) if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for word in words:
        tag = word.strip().lower().lstrip("#")
        if not tag:
            continue
        if not _TAG.fullmatch(tag):
            shown = word.strip()[:40]
            raise ServiceError(
                f"A tag is one short word — letters, digits, - or _, up to 32 characters; "
                f"“{shown}” is not."
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ServiceError(f"Give a task at most {MAX_TAGS} tags.")
    return tags


def set_tags(*, session: Session, task: Task, actor: User, tags: list[str]) -> list[str]:
    """Replace the task's tags with ``tags`` (already cleaned)."""
    current = tags_of(session=session, task_ids=[task.id])[task.id]  # type: ignore[index]
    if current == sorted(tags):
        return current
    for row in session.exec(select(TaskTag).where(TaskTag.task_id == task.id)).all():
        session.delete(row)
    session.flush()
    session.add_all(TaskTag(task_id=task.id, tag=tag) for tag in tags)  # type: ignore[arg-type]
    session.flush()
    record_event(
        session=session, workspace_id=task.workspace_id, actor=actor, verb="tagged",
        subject_type="task", subject_id=task.id, data={"tags": tags},
    )  # fmt: skip
    return sorted(tags)


def tags_of(*, session: Session, task_ids: Iterable[int | None]) -> dict[int, list[str]]:
    """Each task's tags, sorted (an empty list for a task without any)."""
    ids = [task_id for task_id in task_ids if task_id is not None]
    found: dict[int, list[str]] = {task_id: [] for task_id in ids}
    if ids:
        rows = session.exec(
            select(TaskTag).where(col(TaskTag.task_id).in_(ids)).order_by(col(TaskTag.tag))
        ).all()
        for row in rows:
            found[row.task_id].append(row.tag)
    return found


def workspace_tags(*, session: Session, workspace_id: int) -> list[str]:
    """Every tag used on the workspace's tasks, sorted."""
    return list(
        session.exec(
            select(TaskTag.tag)
            .join(Task, col(Task.id) == col(TaskTag.task_id))
            .where(Task.workspace_id == workspace_id)
            .distinct()
            .order_by(col(TaskTag.tag))
        ).all()
    )
