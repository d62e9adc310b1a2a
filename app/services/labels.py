"""What marks a message on the task page: a hand-off ("Hand-off from Coder"), a pipeline's step,
and in the tree of branches the current one, the voted winners and the runs still going."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.models import (
    Agent,
    Comparison,
    ComparisonBranch,
    Message,
    Pipeline,
    Run,
    RunStatus,
    Task,
    Vote,
    VoteOutcome,
)


@dataclass(frozen=True)
class Label:
    """``title``: what the message's head says instead of "You" (None: the usual);
    ``step``: its place in a pipeline ("“Write, test” · round 1 · step 2 of 3")."""

    title: str | None = None
    step: str | None = None


def _step(pipeline: Pipeline | None, run: Run) -> str:
    name = f"“{pipeline.name}”" if pipeline else "a deleted pipeline"
    parts = [f"Pipeline {name}"]
    if run.pipeline_round:
        parts.append(f"round {run.pipeline_round}")
    step = (run.pipeline_step or 0) + 1
    parts.append(f"step {step} of {len(pipeline.steps)}" if pipeline else f"step {step}")
    return " · ".join(parts)


# Built once: every task page view asks it.
_PIPELINE_RUNS_OF = select(Run).where(
    col(Run.pipeline_id).is_not(None),
    sa.or_(
        col(Run.input_message_id).in_(sa.bindparam("ids", expanding=True)),
        col(Run.output_message_id).in_(sa.bindparam("ids", expanding=True)),
    ),
)


def message_labels(
    *, session: Session, messages: Iterable[Message], agents_by_id: dict[int | None, Agent]
) -> dict[int, Label]:
    """Labels for the messages shown that need one: hand-offs and pipeline steps."""
    shown = {m.id: m for m in messages if m.id is not None}
    if not shown:
        return {}
    runs = session.exec(_PIPELINE_RUNS_OF, params={"ids": list(shown)}).all()
    pipelines = (
        {
            p.id: p
            for p in session.exec(
                select(Pipeline).where(col(Pipeline.id).in_([r.pipeline_id for r in runs]))
            ).all()
        }
        if runs
        else {}
    )
    steps: dict[int, str] = {}
    for run in runs:
        text = _step(pipelines.get(run.pipeline_id), run)
        # The answer is the step; so is a hand-off's instruction (not a question that a
        # pipeline was merely started on).
        if run.output_message_id in shown:
            steps.setdefault(run.output_message_id, text)
        if run.input_message_id in shown and shown[run.input_message_id].handoff:
            steps.setdefault(run.input_message_id, text)
    handed = [m.parent_id for m in shown.values() if m.handoff]
    parents = (
        {m.id: m for m in session.exec(select(Message).where(col(Message.id).in_(handed))).all()}
        if handed
        else {}
    )
    labels = {}
    for message_id, message in shown.items():
        title = None
        if message.handoff:
            parent = parents.get(message.parent_id)
            agent = agents_by_id.get(parent.agent_id) if parent else None
            title = f"Hand-off from {agent.name if agent else 'an agent'}"
        if title or message_id in steps:
            labels[message_id] = Label(title=title, step=steps.get(message_id))
    return labels


@dataclass(frozen=True)
class TreeMarks:
    """For the tree of branches: the messages of the branch on screen, the answers voted best
    (with how many votes), and the answers still queued or running."""

    current: set[int]
    winners: dict[int, int]
    running: set[int]


def tree_marks(*, session: Session, task: Task, current: Iterable[int]) -> TreeMarks:
    rows = session.exec(
        select(Vote, ComparisonBranch)
        .join(Comparison, col(Comparison.id) == col(Vote.comparison_id))
        .join(ComparisonBranch, col(ComparisonBranch.comparison_id) == col(Comparison.id))
        .where(Comparison.task_id == task.id)
    ).all()
    winners: dict[int, int] = {}
    for vote, column in rows:
        won = (
            (vote.outcome == VoteOutcome.a and column.position == 0)
            or (vote.outcome == VoteOutcome.b and column.position == 1)
            or (vote.outcome == VoteOutcome.best and vote.winner_message_id == column.message_id)
        )
        if won:
            winners[column.message_id] = winners.get(column.message_id, 0) + 1
    running = session.exec(
        select(Run.output_message_id).where(
            Run.task_id == task.id,
            col(Run.status).in_([RunStatus.queued, RunStatus.running]),
        )
    ).all()
    return TreeMarks(
        current=set(current), winners=winners, running={m for m in running if m is not None}
    )
