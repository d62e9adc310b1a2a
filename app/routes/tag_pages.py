"""A task's tags on its page: shown and edited in place (they filter the leaderboard)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.models import Role, Task, User
from app.services import ServiceError
from app.services.access import require_role, task_for
from app.services.tags import MAX_TAGS, clean_tags, set_tags, tags_of
from app.web.deps import CurrentUser, SessionDep
from app.web.templating import render, wants_fragment

router = APIRouter(tags=["pages"], include_in_schema=False)


def _context(session: Session, task: Task, user: User) -> dict[str, object]:
    role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                        min_role=Role.viewer)  # fmt: skip
    tags = tags_of(session=session, task_ids=[task.id])[task.id]  # type: ignore[index]
    return {"task": task, "tags": tags, "draft": " ".join(tags), "can_edit":
            role.allows(Role.editor), "max_tags": MAX_TAGS}  # fmt: skip


@router.get("/t/{task_id}/tags")
def task_tags(request: Request, task_id: int, session: SessionDep, user: CurrentUser) -> Response:
    """The task's tags (loaded into the task page)."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.viewer)
    return render(request, "_task_tags.html", _context(session, task, user))


@router.post("/t/{task_id}/tags")
def save_task_tags(
    request: Request,
    task_id: int,
    session: SessionDep,
    user: CurrentUser,
    tags: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Replace the task's tags; a mistake is shown beside the field, with what was typed."""
    task = task_for(session=session, task_id=task_id, user=user, min_role=Role.editor)
    try:
        set_tags(session=session, task=task, actor=user, tags=clean_tags(tags))
    except ServiceError as exc:
        session.rollback()
        context = {**_context(session, task, user), "draft": tags, "error": exc.message}
        return render(request, "_task_tags.html", context, status_code=exc.status_code)
    session.commit()
    if not wants_fragment(request):
        return RedirectResponse(f"/t/{task.id}", status_code=303)
    return render(request, "_task_tags.html", {**_context(session, task, user), "saved": True})
