"""Workspaces and who may enter them: memberships, share links, and the activity log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.common import UTCDateTime, choice_check, utcnow


class Role(StrEnum):
    """A member's role, from least to most powerful."""

    viewer = "viewer"
    editor = "editor"
    owner = "owner"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether this role includes everything ``needed`` may do."""
        return self.rank >= Role(needed).rank


class WorkspaceBase(SQLModel):
    name: str = Field(sa_type=sa.String(120), min_length=1, max_length=120)
    description: str = Field(default="", sa_type=sa.Text, max_length=2000)


class WorkspaceCreate(WorkspaceBase):
    """What the API takes to create a workspace."""


class Workspace(WorkspaceBase, table=True):
    """A shared space for tasks and agents, addressed by its slug."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(sa_type=sa.String(64), unique=True, index=True)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WorkspacePublic(WorkspaceBase):
    """A workspace as the API shows it, with the caller's role."""

    id: int
    slug: str
    created_at: datetime
    role: Role


class Membership(SQLModel, table=True):
    """A user's role in one workspace; at most one per user and workspace."""

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "user_id"),
        choice_check("role", Role, "role_valid"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    role: str = Field(sa_type=sa.String(16))
    # The invite link the member joined through, if any ("who joined through it").
    share_link_id: int | None = Field(
        default=None, foreign_key="share_link.id", ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MemberRemoval(SQLModel, table=True):
    """An owner removed this person: invite links made before then no longer let them in."""

    __tablename__ = "member_removal"

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    removed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ShareLinkKind(StrEnum):
    invite = "invite"  # grants a role in the workspace
    task = "task"  # read-only view of one task
    comparison = "comparison"  # read-only view of one comparison


class ShareLink(SQLModel, table=True):
    """A hashed token granting a role on a workspace, or read-only access to one object."""

    __tablename__ = "share_link"
    __table_args__ = (
        choice_check("kind", ShareLinkKind, "kind_valid"),
        sa.CheckConstraint(
            "(kind = 'invite' AND role IS NOT NULL) OR (kind = 'task' AND task_id IS NOT NULL)"
            " OR (kind = 'comparison' AND comparison_id IS NOT NULL)",
            name="target_present",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_type=sa.String(64), unique=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    kind: str = Field(sa_type=sa.String(16))
    role: str | None = Field(default=None, sa_type=sa.String(16))
    task_id: int | None = Field(default=None, foreign_key="task.id", ondelete="CASCADE")
    comparison_id: int | None = Field(default=None, foreign_key="comparison.id", ondelete="CASCADE")
    allow_anonymous: bool = Field(default=False)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    max_uses: int | None = Field(default=None)
    use_count: int = Field(default=0)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Event(SQLModel, table=True):
    """One line of a workspace's activity and audit log: who did what to which object."""

    __table_args__ = (sa.Index("ix_event_workspace_id_id", "workspace_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE")
    actor_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    verb: str = Field(sa_type=sa.String(64))
    subject_type: str = Field(sa_type=sa.String(32))
    subject_id: int | None = Field(default=None)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
