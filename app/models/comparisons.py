"""Side-by-side comparisons of two to four branches, and the votes cast on them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.common import UTCDateTime, choice_check, utcnow


class Comparison(SQLModel, table=True):
    """Two to four branches of one task, shown side by side (optionally blind)."""

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", ondelete="CASCADE", index=True)
    blind: bool = Field(default=False)
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ComparisonBranch(SQLModel, table=True):
    """One column of a comparison: the leaf message of a branch, at a position 0–3."""

    __tablename__ = "comparison_branch"
    __table_args__ = (
        sa.UniqueConstraint("comparison_id", "position"),
        sa.UniqueConstraint("comparison_id", "message_id"),
        sa.CheckConstraint("position >= 0 AND position < 4", name="position_range"),
    )

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", ondelete="CASCADE")
    message_id: int = Field(foreign_key="message.id", ondelete="CASCADE")
    position: int


class MainBranch(SQLModel, table=True):
    """The branch a task continues on ("continue with this one"): one per task at most."""

    __tablename__ = "main_branch"

    task_id: int = Field(foreign_key="task.id", ondelete="CASCADE", primary_key=True)
    message_id: int = Field(foreign_key="message.id", ondelete="CASCADE")
    chosen_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    chosen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class VoteOutcome(StrEnum):
    a = "a"
    b = "b"
    tie = "tie"
    both_bad = "both_bad"
    best = "best"  # with more than two branches: winner_message_id names the best one


class Vote(SQLModel, table=True):
    """A verdict on a comparison, by a person or by a judge agent; one per person and one per
    judge agent. A judge's vote stays a judge's vote when its agent is deleted."""

    __table_args__ = (
        sa.UniqueConstraint("comparison_id", "voter_user_id"),
        sa.UniqueConstraint("comparison_id", "judge_agent_id"),
        choice_check("outcome", VoteOutcome, "outcome_valid"),
        sa.CheckConstraint("judge OR voter_user_id IS NOT NULL", name="voter_present"),
    )

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", ondelete="CASCADE", index=True)
    voter_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    judge_agent_id: int | None = Field(default=None, foreign_key="agent.id", ondelete="SET NULL")
    outcome: str = Field(sa_type=sa.String(16))
    winner_message_id: int | None = Field(
        default=None, foreign_key="message.id", ondelete="SET NULL"
    )
    judge: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # A judge's short reason for its verdict, shown beside the vote.
    reason: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class JudgementStatus(StrEnum):
    pending = "pending"  # the judge's run is queued or running
    voted = "voted"
    unreadable = "unreadable"  # the judge answered, but no verdict could be read from it
    failed = "failed"  # the judge's run failed or was cancelled


class Judgement(SQLModel, table=True):
    """A judge agent asked to vote on a comparison: its run, and what came of it."""

    __table_args__ = (choice_check("status", JudgementStatus, "status_valid"),)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", ondelete="CASCADE", index=True)
    agent_id: int | None = Field(default=None, foreign_key="agent.id", ondelete="SET NULL")
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE", unique=True)
    status: str = Field(default=JudgementStatus.pending, sa_type=sa.String(16))
    # Why no vote came of it (unreadable or failed), in words a person can act on.
    message: str | None = Field(default=None, sa_type=sa.Text)
    vote_id: int | None = Field(default=None, foreign_key="vote.id", ondelete="SET NULL")
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ComparisonCreate(SQLModel):
    """Two to four branches of one task, each named by its last message."""

    message_ids: list[int] = Field(min_length=2, max_length=4)
    blind: bool = False


class VoteCreate(SQLModel):
    """``a``, ``b``, ``tie`` or ``both_bad`` for two branches; ``best`` with a winner for more."""

    outcome: VoteOutcome
    winner_message_id: int | None = None


class VotePublic(SQLModel):
    id: int
    outcome: str
    winner_message_id: int | None
    voter_user_id: int | None
    judge: bool = False
    judge_agent_id: int | None = None
    reason: str | None = None


class JudgementCreate(SQLModel):
    agent_id: int


class JudgementPublic(SQLModel):
    id: int
    comparison_id: int
    agent_id: int | None
    run_id: int
    status: str
    message: str | None
    vote_id: int | None


class ComparisonPublic(SQLModel):
    id: int
    task_id: int
    blind: bool
    message_ids: list[int]
    votes: list[VotePublic] = []
