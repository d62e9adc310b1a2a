"""The work itself: tasks, their message trees, and the runs that produce agent messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.common import UTCDateTime, choice_check, utcnow


class TaskStatus(StrEnum):
    backlog = "backlog"
    running = "running"
    review = "review"
    done = "done"


class Task(SQLModel, table=True):
    """A piece of work on a workspace's board, with its message tree."""

    __table_args__ = (
        choice_check("status", TaskStatus, "status_valid"),
        sa.Index("ix_task_workspace_id_status_position", "workspace_id", "status", "position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE")
    title: str = Field(sa_type=sa.String(200))
    brief: str = Field(default="", sa_type=sa.Text)
    status: str = Field(default=TaskStatus.backlog, sa_type=sa.String(16))
    assignee_agent_id: int | None = Field(default=None, foreign_key="agent.id", ondelete="SET NULL")
    position: float = Field(default=0.0)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MessageRole(StrEnum):
    user = "user"
    assistant = "assistant"


class Message(SQLModel, table=True):
    """A node of a task's message tree; a branch is the path from the root to a leaf."""

    __table_args__ = (
        choice_check("role", MessageRole, "role_valid"),
        sa.Index("ix_message_task_id_parent_id", "task_id", "parent_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", ondelete="CASCADE")
    parent_id: int | None = Field(default=None, foreign_key="message.id", ondelete="CASCADE")
    role: str = Field(sa_type=sa.String(16))
    content: str = Field(default="", sa_type=sa.Text)
    author_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    agent_id: int | None = Field(default=None, foreign_key="agent.id", ondelete="SET NULL")
    # Set on an edited copy of a user message: the sibling it was edited from.
    edited_from_id: int | None = Field(default=None, foreign_key="message.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Run(SQLModel, table=True):
    """One agent producing one assistant message, with its timings and token counts."""

    __table_args__ = (
        choice_check("status", RunStatus, "status_valid"),
        sa.Index("ix_run_status_queued_at", "status", "queued_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", ondelete="CASCADE", index=True)
    agent_id: int | None = Field(default=None, foreign_key="agent.id", ondelete="SET NULL")
    model_id: int | None = Field(default=None, foreign_key="model.id", ondelete="SET NULL")
    # The message this run answers; its context is the path from the root to here.
    input_message_id: int = Field(foreign_key="message.id", ondelete="CASCADE", index=True)
    # Unique: a message is the output of at most one run, and a run has one output column.
    output_message_id: int | None = Field(
        default=None, foreign_key="message.id", ondelete="SET NULL", unique=True
    )
    status: str = Field(default=RunStatus.queued, sa_type=sa.String(16))
    attempts: int = Field(default=0)
    error: str | None = Field(default=None, sa_type=sa.Text)
    fanout_group: str | None = Field(default=None, sa_type=sa.String(36), index=True)
    pipeline_step: int | None = Field(default=None)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    queued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_token_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    prompt_tokens: int | None = Field(default=None)
    completion_tokens: int | None = Field(default=None)
    context_trimmed: bool = Field(default=False)
