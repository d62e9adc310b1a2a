"""Workspaces: creating them, finding the ones a person may enter, and their activity log."""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from app.engine import live
from app.models import Event, Membership, Role, Run, Task, User, Workspace
from app.services import Conflict, NotFound, ServiceError
from app.services.access import at_least

log = logging.getLogger(__name__)
MAX_NAME_LENGTH = 120


def slugify(name: str) -> str:
    """A URL slug from a name: ascii, lowercase, words joined by hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:48].strip("-") or "workspace"


def _unique_slug(session: Session, name: str) -> str:
    base = slugify(name)
    taken = set(
        session.exec(select(Workspace.slug).where(col(Workspace.slug).startswith(base))).all()
    )
    if base not in taken:
        return base
    suffix = 2
    while f"{base}-{suffix}" in taken:
        suffix += 1
    return f"{base}-{suffix}"


def record_event(
    *,
    session: Session,
    workspace_id: int,
    actor: User | None,
    verb: str,
    subject_type: str,
    subject_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Append one line to a workspace's activity log."""
    event = Event(
        workspace_id=workspace_id,
        actor_user_id=actor.id if actor else None,
        verb=verb,
        subject_type=subject_type,
        subject_id=subject_id,
        data=data or {},
    )
    session.add(event)
    return event


def create_workspace(
    *, session: Session, name: str, owner: User, description: str = ""
) -> Workspace:
    """A new workspace with ``owner`` as its first owner."""
    name = name.strip()
    if not name:
        raise ServiceError("Give the workspace a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ServiceError(f"Keep the name under {MAX_NAME_LENGTH} characters.")
    workspace = Workspace(
        slug=_unique_slug(session, name),
        name=name,
        description=description.strip(),
        created_by_id=owner.id,
    )
    session.add(workspace)
    session.flush()
    assert workspace.id is not None and owner.id is not None
    session.add(Membership(workspace_id=workspace.id, user_id=owner.id, role=Role.owner))
    record_event(
        session=session,
        workspace_id=workspace.id,
        actor=owner,
        verb="created",
        subject_type="workspace",
        subject_id=workspace.id,
        data={"name": name},
    )
    session.flush()
    return workspace


def workspaces_of(*, session: Session, user: User) -> list[tuple[Workspace, str]]:
    """The workspaces ``user`` belongs to, with their role in each, newest first."""
    rows = session.exec(
        select(Workspace, Membership.role)
        .join(Membership, col(Membership.workspace_id) == col(Workspace.id))
        .where(Membership.user_id == user.id)
        .order_by(col(Workspace.created_at).desc(), col(Workspace.id).desc())
    ).all()
    return [(workspace, role) for workspace, role in rows]


# Built once: every workspace page runs it.
_WORKSPACE_AND_ROLE = (
    select(Workspace, Membership.role)
    .join(Membership, col(Membership.workspace_id) == col(Workspace.id))
    .where(Workspace.slug == sa.bindparam("slug"), Membership.user_id == sa.bindparam("user_id"))
)


def workspace_for(
    *, session: Session, slug: str, user: User, min_role: Role
) -> tuple[Workspace, Role]:
    """The workspace ``slug`` and the user's role, if it is at least ``min_role``; NotFound
    otherwise."""
    row = session.exec(_WORKSPACE_AND_ROLE, params={"slug": slug, "user_id": user.id}).first()
    if row is None:
        raise NotFound("No such workspace.")
    return row[0], at_least(row[1], min_role, missing="No such workspace.")


def role_in(*, session: Session, workspace: Workspace, user: User) -> Role | None:
    role = session.exec(
        select(Membership.role).where(
            Membership.workspace_id == workspace.id, Membership.user_id == user.id
        )
    ).first()
    return Role(role) if role else None


def rename_workspace(
    *, session: Session, workspace: Workspace, actor: User, name: str
) -> Workspace:
    """A new name; the slug (and every link) stays as it is."""
    name = name.strip()
    if not name:
        raise ServiceError("Give the workspace a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ServiceError(f"Keep the name under {MAX_NAME_LENGTH} characters.")
    old, workspace.name = workspace.name, name
    session.add(workspace)
    record_event(
        session=session, workspace_id=workspace.id, actor=actor, verb="renamed",  # type: ignore[arg-type]
        subject_type="workspace", subject_id=workspace.id, data={"name": name, "from": old},
    )  # fmt: skip
    session.flush()
    return workspace


# The cascade takes row locks in a different order than a worker finishing a run of the
# workspace; PostgreSQL then breaks the deadlock by aborting one side. The delete tries again.
DELETE_ATTEMPTS = 3


def _lock_conflict(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001") or "database is locked" in str(exc)


def delete_workspace(*, session: Session, workspace: Workspace, actor: User) -> list[str]:
    """Delete the workspace and everything in it (its rows cascade); returns the Redis keys of
    its live streams, for the caller to forget once the deletion is committed. A deadlock with a
    worker writing into the workspace rolls the session back and tries again."""
    workspace_id = workspace.id
    for attempt in range(1, DELETE_ATTEMPTS + 1):
        try:
            return _delete_workspace(session, workspace, actor)
        except OperationalError as exc:
            session.rollback()
            if attempt == DELETE_ATTEMPTS or not _lock_conflict(exc):
                raise Conflict(
                    "The workspace is busy (its runs are being written); try again in a moment."
                ) from None
            log.info("deleting workspace %s met a lock conflict; trying again", workspace_id)
            found = session.get(Workspace, workspace_id)
            if found is None:
                return []
            workspace = found
    return []


def _delete_workspace(session: Session, workspace: Workspace, actor: User) -> list[str]:
    run_ids = session.exec(
        select(Run.id).join(Task, col(Task.id) == col(Run.task_id))
        .where(Task.workspace_id == workspace.id)
    ).all()  # fmt: skip
    keys = live.workspace_keys(workspace.id, [r for r in run_ids if r is not None])  # type: ignore[arg-type]
    log.info("workspace %s deleted by user %s", workspace.id, actor.id)
    session.delete(workspace)
    session.flush()
    return keys
