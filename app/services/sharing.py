"""Sharing a workspace: invite links that grant a role, read-only links to one task or
comparison, members and their roles. Every change is an Event in the workspace's log.

Link tokens carry 32 random bytes; only their SHA-256 is stored, and a token is found by its
hash, so the secret itself is never compared. An expired, used-up or revoked link is
indistinguishable from one that never existed (NotFound).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.models import (
    Comparison,
    MemberRemoval,
    Membership,
    Role,
    ShareLink,
    ShareLinkKind,
    Task,
    User,
    Workspace,
)
from app.models.common import utcnow
from app.security import hash_token, new_token
from app.services import Conflict, Forbidden, NotFound, ServiceError
from app.services.access import require_role
from app.services.workspaces import record_event

MAX_LINK_DAYS = 90
MAX_LINK_USES = 1000


@dataclass(frozen=True)
class IssuedLink:
    link: ShareLink
    token: str  # shown once, never stored


def _check_limits(expires_in_days: int | None, max_uses: int | None) -> None:
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_LINK_DAYS:
        raise ServiceError(f"A link lasts between 1 and {MAX_LINK_DAYS} days.")
    if max_uses is not None and not 1 <= max_uses <= MAX_LINK_USES:
        raise ServiceError(f"A link can be used between 1 and {MAX_LINK_USES} times.")


def create_invite(
    *,
    session: Session,
    workspace: Workspace,
    owner: User,
    role: Role,
    expires_in_days: int | None = 7,
    max_uses: int | None = 10,
) -> IssuedLink:
    """An invite link that makes whoever opens it an editor or viewer of the workspace."""
    if Role(role) == Role.owner:
        raise ServiceError("Invite editors or viewers; make someone an owner once they joined.")
    _check_limits(expires_in_days, max_uses)
    token = new_token()
    link = ShareLink(
        token_hash=hash_token(token),
        workspace_id=workspace.id,  # type: ignore[arg-type]
        kind=ShareLinkKind.invite,
        role=Role(role),
        created_by_id=owner.id,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        max_uses=max_uses,
    )
    session.add(link)
    session.flush()
    record_event(
        session=session, workspace_id=workspace.id, actor=owner, verb="created",  # type: ignore[arg-type]
        subject_type="invite link", subject_id=link.id,
        data={"role": str(role), "max_uses": max_uses, "expires_in_days": expires_in_days},
    )  # fmt: skip
    return IssuedLink(link, token)


def create_read_only_link(
    *,
    session: Session,
    author: User,
    task: Task | None = None,
    comparison: Comparison | None = None,
    allow_anonymous: bool = False,
    expires_in_days: int | None = None,
) -> IssuedLink:
    """A read-only link to one task or one comparison (live: new runs appear)."""
    _check_limits(expires_in_days, None)
    if (task is None) == (comparison is None):
        raise ServiceError("Share one task or one comparison.")
    if comparison is not None:
        task = session.get(Task, comparison.task_id)
    assert task is not None
    token = new_token()
    link = ShareLink(
        token_hash=hash_token(token),
        workspace_id=task.workspace_id,
        kind=ShareLinkKind.comparison if comparison else ShareLinkKind.task,
        task_id=task.id if comparison is None else None,
        comparison_id=comparison.id if comparison else None,
        allow_anonymous=allow_anonymous,
        created_by_id=author.id,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(link)
    session.flush()
    record_event(
        session=session, workspace_id=task.workspace_id, actor=author, verb="shared",
        subject_type=str(link.kind), subject_id=comparison.id if comparison else task.id,
        data={"task_id": task.id, "anonymous": allow_anonymous, "link_id": link.id},
    )  # fmt: skip
    return IssuedLink(link, token)


def _usable(link: ShareLink | None) -> ShareLink:
    now = utcnow()
    if (
        link is None
        or link.revoked_at is not None
        or (link.expires_at is not None and link.expires_at <= now)
        or (link.max_uses is not None and link.use_count >= link.max_uses)
    ):
        raise NotFound("This link does not work: it was revoked, has expired, or is used up.")
    return link


def find_link(*, session: Session, token: str, kind: ShareLinkKind | None = None) -> ShareLink:
    """The usable link a token belongs to; NotFound for any other."""
    link = session.exec(select(ShareLink).where(ShareLink.token_hash == hash_token(token))).first()
    if link is not None and kind is not None and link.kind != kind:
        link = None
    return _usable(link)


def join(*, session: Session, token: str, user: User) -> tuple[Workspace, Membership]:
    """Use an invite: ``user`` joins with the link's role (members keep a higher role)."""
    link = find_link(session=session, token=token, kind=ShareLinkKind.invite)
    workspace = session.get(Workspace, link.workspace_id)
    assert workspace is not None
    existing = session.exec(
        select(Membership).where(
            Membership.workspace_id == workspace.id, Membership.user_id == user.id
        )
    ).first()
    if existing is not None:
        return workspace, existing
    removed_since = session.exec(
        select(MemberRemoval.id).where(
            MemberRemoval.workspace_id == workspace.id,
            MemberRemoval.user_id == user.id,
            MemberRemoval.removed_at >= link.created_at,
        )
    ).first()
    if removed_since is not None:
        raise Forbidden(
            "You were removed from this workspace after this link was made; "
            "ask an owner for a new invite."
        )
    # One conditional UPDATE: two people racing for the last use cannot both get in.
    used = session.execute(  # type: ignore[attr-defined]
        sa.update(ShareLink)
        .where(
            col(ShareLink.id) == link.id,
            sa.or_(
                col(ShareLink.max_uses).is_(None), col(ShareLink.use_count) < ShareLink.max_uses
            ),
        )
        .values(use_count=ShareLink.use_count + 1)  # type: ignore[operator]
    ).rowcount
    if not used:
        raise NotFound("This link does not work: it was revoked, has expired, or is used up.")
    membership = Membership(
        workspace_id=workspace.id,  # type: ignore[arg-type]
        user_id=user.id,  # type: ignore[arg-type]
        role=link.role or Role.viewer,
        share_link_id=link.id,
    )
    session.add(membership)
    session.flush()
    record_event(
        session=session, workspace_id=workspace.id, actor=user, verb="joined",  # type: ignore[arg-type]
        subject_type="member", subject_id=user.id,
        data={"role": membership.role, "link_id": link.id, "name": user.display_name},
    )  # fmt: skip
    return workspace, membership


def revoke_link(*, session: Session, link_id: int, actor: User) -> ShareLink:
    """Revoke a link: owners any link of their workspace; others the read-only links they made.
    Anyone else is told there is no such link."""
    link = session.get(ShareLink, link_id)
    if link is None:
        raise NotFound("No such link.")
    role = require_role(session=session, workspace_id=link.workspace_id, user=actor,
                        min_role=Role.viewer)  # fmt: skip
    if role != Role.owner and (link.kind == ShareLinkKind.invite or link.created_by_id != actor.id):
        raise NotFound("No such link.")
    revoke(session=session, link=link, actor=actor)
    return link


def revoke(*, session: Session, link: ShareLink, actor: User) -> None:
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        session.add(link)
        record_event(
            session=session, workspace_id=link.workspace_id, actor=actor, verb="revoked",
            subject_type=f"{link.kind} link", subject_id=link.id,
        )  # fmt: skip
        session.flush()


def links_of(*, session: Session, workspace: Workspace, kind: ShareLinkKind) -> list[ShareLink]:
    return list(
        session.exec(
            select(ShareLink)
            .where(ShareLink.workspace_id == workspace.id, ShareLink.kind == kind)
            .order_by(col(ShareLink.id).desc())
        ).all()
    )


def active_read_only_links(
    *, session: Session, workspace: Workspace
) -> list[tuple[ShareLink, User | None]]:
    """The workspace's task and comparison links that still work, newest first, with who made
    each (what owners review and revoke)."""
    now = utcnow()
    rows = session.exec(
        select(ShareLink, User)
        .join(User, col(User.id) == col(ShareLink.created_by_id), isouter=True)
        .where(
            ShareLink.workspace_id == workspace.id,
            col(ShareLink.kind).in_([ShareLinkKind.task, ShareLinkKind.comparison]),
            col(ShareLink.revoked_at).is_(None),
            sa.or_(col(ShareLink.expires_at).is_(None), col(ShareLink.expires_at) > now),
        )
        .order_by(col(ShareLink.id).desc())
    ).all()
    return [(link, user) for link, user in rows]


# Built once (the task page asks on every view): the links to a task and to its comparisons
# that still work, newest first, with who made each; and those of one maker.
_TASK_LINKS = (
    select(ShareLink, User)
    .join(User, col(User.id) == col(ShareLink.created_by_id), isouter=True)
    .where(
        sa.or_(
            col(ShareLink.task_id) == sa.bindparam("task_id"),
            col(ShareLink.comparison_id).in_(
                select(Comparison.id).where(Comparison.task_id == sa.bindparam("task_id"))
            ),
        ),
        col(ShareLink.revoked_at).is_(None),
        sa.or_(
            col(ShareLink.expires_at).is_(None), col(ShareLink.expires_at) > sa.bindparam("now")
        ),
    )
    .order_by(col(ShareLink.id).desc())
)
_TASK_LINKS_BY = _TASK_LINKS.where(ShareLink.created_by_id == sa.bindparam("maker_id"))


def active_links_of_task(
    *, session: Session, task: Task, user: User, role: Role | None = None
) -> list[tuple[ShareLink, User | None]]:
    """The read-only links to a task and to its comparisons that still work and that ``user``
    may revoke (an owner: all of them; anyone else: their own), newest first, with who made
    each. ``role``: the user's role in the task's workspace, when the caller has read it."""
    if role is None:
        role = require_role(session=session, workspace_id=task.workspace_id, user=user,
                            min_role=Role.viewer)  # fmt: skip
    params = {"task_id": task.id, "now": utcnow()}
    if role == Role.owner:
        rows = session.exec(_TASK_LINKS, params=params).all()
    else:
        rows = session.exec(_TASK_LINKS_BY, params={**params, "maker_id": user.id}).all()
    return [(link, maker) for link, maker in rows]


def joined_through(*, session: Session, link: ShareLink) -> list[User]:
    return list(
        session.exec(
            select(User)
            .join(Membership, col(Membership.user_id) == col(User.id))
            .where(Membership.share_link_id == link.id)
            .order_by(col(User.email))
        ).all()
    )


def members(*, session: Session, workspace: Workspace) -> list[tuple[User, Membership]]:
    rows = session.exec(
        select(User, Membership)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(Membership.workspace_id == workspace.id)
        .order_by(col(User.email))
    ).all()
    return [(user, membership) for user, membership in rows]


def _other_owners_remain(workspace_id: int) -> sa.ColumnElement[bool]:
    """SQL: after this change the workspace still has an owner (it has more than one now)."""
    owners = (
        sa.select(sa.func.count())
        .select_from(Membership)
        .where(col(Membership.workspace_id) == workspace_id, col(Membership.role) == Role.owner)
        .scalar_subquery()
    )
    return owners > 1


def _lock_workspace(session: Session, workspace_id: int) -> None:
    """Serialise changes to a workspace's owners: a row lock on PostgreSQL. (SQLite has one
    writer at a time, and the conditional statements below check and write in one step.)"""
    session.execute(
        sa.select(col(Workspace.id)).where(col(Workspace.id) == workspace_id).with_for_update()
    )


def _membership(session: Session, workspace: Workspace, user_id: int) -> Membership:
    found = session.exec(
        select(Membership).where(
            Membership.workspace_id == workspace.id, Membership.user_id == user_id
        )
    ).first()
    if found is None:
        raise NotFound("No such member.")
    return found


def change_role(
    *, session: Session, workspace: Workspace, actor: User, user_id: int, role: Role
) -> Membership:
    """Owners change members' roles; the last owner stays an owner (checked in the same
    statement that writes, so two owners demoting each other at once cannot both succeed)."""
    membership = _membership(session, workspace, user_id)
    role = Role(role)
    _lock_workspace(session, workspace.id)  # type: ignore[arg-type]
    keeps_an_owner = sa.or_(col(Membership.role) != Role.owner, sa.literal(role == Role.owner),
                            _other_owners_remain(workspace.id))  # type: ignore[arg-type]  # fmt: skip
    old = membership.role
    changed = session.execute(  # type: ignore[attr-defined]
        sa.update(Membership)
        .where(col(Membership.id) == membership.id, keeps_an_owner)
        .values(role=role)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        raise Conflict("The last owner cannot step down; make someone else an owner first.")
    session.refresh(membership)
    record_event(
        session=session, workspace_id=workspace.id, actor=actor, verb="changed role",  # type: ignore[arg-type]
        subject_type="member", subject_id=user_id, data={"from": old, "to": str(role)},
    )  # fmt: skip
    session.flush()
    return membership


def remove_member(*, session: Session, workspace: Workspace, actor: User, user_id: int) -> None:
    """Remove a member (or leave, when ``user_id`` is the actor); never the last owner. The
    read-only links the member made are revoked with them."""
    membership = _membership(session, workspace, user_id)
    _lock_workspace(session, workspace.id)  # type: ignore[arg-type]
    removed = session.execute(  # type: ignore[attr-defined]
        sa.delete(Membership)
        .where(
            col(Membership.id) == membership.id,
            sa.or_(col(Membership.role) != Role.owner, _other_owners_remain(workspace.id)),  # type: ignore[arg-type]
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not removed:
        raise Conflict("The last owner cannot leave; make someone else an owner first.")
    session.expunge(membership)
    if user_id != actor.id:
        session.add(MemberRemoval(workspace_id=workspace.id, user_id=user_id))  # type: ignore[arg-type]
    for link in session.exec(
        select(ShareLink).where(
            ShareLink.workspace_id == workspace.id,
            ShareLink.created_by_id == user_id,
            col(ShareLink.revoked_at).is_(None),
        )
    ).all():
        revoke(session=session, link=link, actor=actor)
    record_event(
        session=session, workspace_id=workspace.id, actor=actor,  # type: ignore[arg-type]
        verb="left" if user_id == actor.id else "removed", subject_type="member",
        subject_id=user_id,
    )  # fmt: skip
    session.flush()
