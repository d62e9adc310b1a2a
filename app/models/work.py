"""The work itself: tasks, their message trees, and the runs that produce agent messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

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


class TaskTag(SQLModel, table=True):
    """A short label on a task (``parsing``, ``sql``), for filtering the leaderboard."""

    __tablename__ = "task_tag"

    task_id: int = Field(foreign_key="task.id", ondelete="CASCADE", primary_key=True)
    tag: str = Field(sa_type=sa.String(32), primary_key=True, index=True)


class MessageRole(StrEnum):
    user = "user"
    assistant = "assistant"


class MessageKind(StrEnum):
    """What a message is beyond its role. A check's summary has the role ``user`` (it is what
    the next agent is told; chat templates know only user and assistant turns) and the kind
    ``check``: pages show it as a check, and the prompt formats render it as a check result
    (``app.engine.conversation``)."""

    check = "check"


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
    # None for what a person or an agent wrote; MessageKind.check for a check's summary.
    kind: str | None = Field(default=None, sa_type=sa.String(16))
    # An instruction that handed the answer above it on to an agent (by a person or a pipeline
    # step), not an ordinary reply: the page labels it "Hand-off from <agent>".
    handoff: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
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
    pipeline_id: int | None = Field(default=None, foreign_key="pipeline.id", ondelete="SET NULL")
    pipeline_round: int | None = Field(default=None)
    pipeline_step: int | None = Field(default=None)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    queued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_token_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    prompt_tokens: int | None = Field(default=None)
    completion_tokens: int | None = Field(default=None)
    context_trimmed: bool = Field(default=False)
    tokens_per_second: float | None = Field(default=None)
    # Delivery bookkeeping: when the Celery message was sent, and who holds the run until when.
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, sa_type=sa.String(200))
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A cancel of a running run, durable: its worker looks here too (the Redis flag is faster,
    # but a Redis restart loses it).
    cancel_requested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A pipeline step: the run whose answer it carries on. Unique, so a duplicate delivery of
    # the step that finished cannot start the next one twice.
    pipeline_after_run_id: int | None = Field(
        default=None, foreign_key="run.id", ondelete="SET NULL", unique=True
    )


class Pipeline(SQLModel, table=True):
    """A named sequence of hand-offs (e.g. Coder → Tester → Coder), repeated up to N rounds."""

    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "name"),
        sa.CheckConstraint("max_rounds >= 1 AND max_rounds <= 10", name="max_rounds_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = Field(foreign_key="workspace.id", ondelete="CASCADE", index=True)
    name: str = Field(sa_type=sa.String(120))
    # [{"agent_id": 1, "instruction": "Test this."}, ...]: each step hands the branch on.
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    max_rounds: int = Field(default=1)
    # A reply starting with this word (e.g. PASS) ends the pipeline early.
    stop_word: str | None = Field(default=None, sa_type=sa.String(40))
    # Check step: a step's answer that holds tests is run against the answer it was handed;
    # the next step starts from the check, so its agent sees what failed.
    run_checks: bool = Field(default=False)
    stop_when_checks_pass: bool = Field(default=False)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CheckStatus(StrEnum):
    queued = "queued"
    running = "running"
    passed = "passed"
    failed = "failed"
    error = "error"  # the code could not be run as given (no code, a crash, a timeout)
    unavailable = "unavailable"  # the sandbox cannot start here; nothing ran
    cancelled = "cancelled"


CHECK_ACTIVE = (CheckStatus.queued, CheckStatus.running)


class Check(SQLModel, table=True):
    """An answer's code (and optionally another answer's tests) run once in the sandbox.

    Its summary is a message of the tree (``message_id``) under the answer that was checked, so
    the next agent on that branch sees what failed. That message has the role ``user`` (what
    the agent is told) and the kind ``check``: a new role would mean rebuilding the message
    table on SQLite (whose DROP TABLE cascades into every run); a new column does not.

    Delivery is the runs' (``app.engine.delivery``): ``dispatched_at`` is when its Celery
    message was sent, ``claimed_by``/``lease_until`` who runs it until when.
    """

    __tablename__ = "code_check"  # "check" is an SQL keyword
    __table_args__ = (
        choice_check("status", CheckStatus, "status_valid"),
        sa.Index("ix_code_check_status_queued_at", "status", "queued_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", ondelete="CASCADE", index=True)
    code_message_id: int = Field(foreign_key="message.id", ondelete="CASCADE", index=True)
    test_message_id: int | None = Field(
        default=None, foreign_key="message.id", ondelete="CASCADE", index=True
    )
    message_id: int | None = Field(
        default=None, foreign_key="message.id", ondelete="SET NULL", unique=True
    )
    # Tests given as text rather than by an answer: an evaluation suite's Python check.
    tests_text: str | None = Field(default=None, sa_type=sa.Text)
    status: str = Field(default=CheckStatus.queued, sa_type=sa.String(16))
    exit_code: int | None = Field(default=None)
    tests_passed: int | None = Field(default=None)
    tests_failed: int | None = Field(default=None)
    tests_errors: int | None = Field(default=None)
    # [{"name": "test_x", "message": "AssertionError: ..."}], at most MAX_FAILURES
    failures: list[dict[str, str]] = Field(default_factory=list, sa_type=sa.JSON)
    output: str = Field(default="", sa_type=sa.Text)  # the tail of stdout then stderr
    output_truncated: bool = Field(default=False)
    duration_s: float | None = Field(default=None)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    attempts: int = Field(default=0)
    pipeline_id: int | None = Field(default=None, foreign_key="pipeline.id", ondelete="SET NULL")
    pipeline_round: int | None = Field(default=None)
    pipeline_step: int | None = Field(default=None)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    queued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, sa_type=sa.String(200))
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TaskCreate(SQLModel):
    """A new task; with ``agent_ids`` (or an assignee) its brief is asked at once."""

    title: str = Field(min_length=1, max_length=200)
    brief: str = Field(default="", max_length=100_000)
    assignee_agent_id: int | None = None
    agent_ids: list[int] = Field(default_factory=list, max_length=8)
    tags: list[str] = Field(default_factory=list, max_length=8)


class TaskUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    brief: str | None = Field(default=None, max_length=100_000)
    status: TaskStatus | None = None
    position: float | None = None
    tags: list[str] | None = Field(default=None, max_length=8, description="Replaces the tags.")


class MessagePublic(SQLModel):
    id: int
    parent_id: int | None
    role: str
    content: str
    agent_id: int | None
    author_user_id: int | None
    edited_from_id: int | None
    kind: str | None = None
    handoff: bool = False
    created_at: datetime


class RunPublic(SQLModel):
    """A run with its figures; ``queue_position`` while queued."""

    id: int
    task_id: int
    agent_id: int | None
    model_id: int | None
    input_message_id: int
    output_message_id: int | None
    status: str
    attempts: int
    error: str | None
    fanout_group: str | None
    pipeline_id: int | None
    pipeline_round: int | None
    pipeline_step: int | None
    queued_at: datetime
    started_at: datetime | None
    first_token_at: datetime | None
    finished_at: datetime | None
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_per_second: float | None
    context_trimmed: bool
    queue_wait_ms: float | None = None
    time_to_first_token_ms: float | None = None
    queue_position: int | None = None


class TaskPublic(SQLModel):
    id: int
    workspace_id: int
    title: str
    brief: str
    status: str
    assignee_agent_id: int | None
    position: float
    created_at: datetime
    updated_at: datetime
    tags: list[str] = []


class TaskDetail(TaskPublic):
    """A task with its whole message tree (each message names its parent) and its runs."""

    messages: list[MessagePublic] = []
    runs: list[RunPublic] = []


class PipelineCreate(SQLModel):
    name: str = Field(min_length=1, max_length=120)
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=6)
    max_rounds: int = Field(default=1, ge=1, le=10)
    stop_word: str | None = Field(default=None, max_length=40)
    run_checks: bool = False
    stop_when_checks_pass: bool = False


class PipelinePublic(SQLModel):
    id: int
    workspace_id: int
    name: str
    steps: list[dict[str, Any]]
    max_rounds: int
    stop_word: str | None
    run_checks: bool
    stop_when_checks_pass: bool


class CheckCreate(SQLModel):
    """Run an answer's code; with ``test_message_id``, that answer's tests against it; with
    ``code_message_id``, this answer's tests against that answer's code (one of the two)."""

    test_message_id: int | None = None
    code_message_id: int | None = None


class CheckPublic(SQLModel):
    id: int
    task_id: int
    code_message_id: int
    test_message_id: int | None
    message_id: int | None
    status: str
    exit_code: int | None
    tests_passed: int | None
    tests_failed: int | None
    tests_errors: int | None
    failures: list[dict[str, str]]
    output: str
    output_truncated: bool
    duration_s: float | None
    reason: str | None
    attempts: int
    pipeline_id: int | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
