"""The board of a workspace: tasks by column, a page at a time, with their live runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from app.models import (
    Agent,
    Event,
    Model,
    ModelEndpoint,
    Run,
    RunStatus,
    SuiteResult,
    Task,
    TaskStatus,
    User,
    Workspace,
)

# A column shows its newest cards, this many at a time ("Show N more" under them for the rest):
# more than a screenful already, and each card costs the page its rendering.
COLUMN_PAGE = 20
FEED_SIZE = 20


class Card(NamedTuple):
    """What a board card shows of a task: a row of four columns, not a whole Task (its brief,
    its timestamps) made into an ORM object, for each of a board's cards."""

    id: int
    title: str
    status: str
    assignee_agent_id: int | None


@dataclass(frozen=True)
class Column:
    status: str
    tasks: list[Card]
    total: int
    offset: int

    @property
    def more(self) -> int:
        return max(self.total - self.offset - len(self.tasks), 0)


# The board's statements are built once per process (building one cost more than running it);
# they take the workspace (and a column's offset, lists of task ids) as parameters.
_WORKSPACE: sa.BindParameter[int] = sa.bindparam("workspace_id")
_TASK_IDS: sa.BindParameter[list[int]] = sa.bindparam("task_ids", expanding=True)


def _on_board(status: str | None) -> list:
    """A column's tasks (every column's without ``status``), of the workspace: not those of
    evaluation suites (they are shown under their suite)."""
    return [
        Task.workspace_id == _WORKSPACE,
        *([Task.status == status] if status is not None else []),
        col(Task.id).not_in(
            select(SuiteResult.task_id).where(col(SuiteResult.task_id).is_not(None))
        ),
        col(Task.id).not_in(
            select(SuiteResult.judge_task_id).where(col(SuiteResult.judge_task_id).is_not(None))
        ),
    ]


def _page(status: str) -> sa.Select:
    return (
        sa.select(
            col(Task.id),
            col(Task.title),
            col(Task.status),
            col(Task.assignee_agent_id),
            col(Task.position),
        )  # fmt: skip
        .where(*_on_board(status))
        .order_by(col(Task.position).desc(), col(Task.id).desc())
        .offset(sa.bindparam("offset", type_=sa.Integer))
        .limit(COLUMN_PAGE)
    )


@lru_cache(maxsize=32)
def _pages(statuses: tuple[str, ...]) -> sa.Executable:
    """A page of each of these columns in one statement (at most 15 sets of columns)."""
    pages = [sa.select(_page(s).subquery()) for s in statuses]
    return pages[0] if len(pages) == 1 else sa.union_all(*pages)


@lru_cache(maxsize=8)
def _counts(status: str | None) -> sa.Select:
    return (
        sa.select(col(Task.status), func.count())
        .where(*_on_board(status))
        .group_by(col(Task.status))
    )


def _cards(
    session: Session, workspace: Workspace, statuses: list[str], offset: int = 0
) -> dict[str, list[Card]]:
    """A page of each of these columns, newest first, in one query (each column's page read
    through the index on workspace, status and position); Core rows, no ORM objects."""
    if not statuses:
        return {}
    query = _pages(tuple(statuses))
    params = {"workspace_id": workspace.id, "offset": offset}
    rows = sorted(session.connection().execute(query, params), key=lambda r: (-r[4], -r[0]))
    found: dict[str, list[Card]] = {s: [] for s in statuses}
    for task_id, title, status, assignee, _ in rows:
        found[status].append(Card(task_id, title, status, assignee))
    return found


def _totals(session: Session, workspace: Workspace, status: str | None = None) -> dict[str, int]:
    """Tasks per column (one query for all of them)."""
    rows = session.connection().execute(_counts(status), {"workspace_id": workspace.id})
    return {status: int(count) for status, count in rows}


def column(*, session: Session, workspace: Workspace, status: str, offset: int = 0) -> Column:
    """A page of one column, newest first (the board shows the first; "Show more" the next)."""
    return Column(
        status=status,
        tasks=_cards(session, workspace, [status], offset)[status],
        total=_totals(session, workspace, status).get(status, 0),
        offset=offset,
    )


def columns(*, session: Session, workspace: Workspace) -> list[Column]:
    totals = _totals(session, workspace)
    cards = _cards(session, workspace, [s for s in TaskStatus if totals.get(s)])
    return [
        Column(
            status=s,
            tasks=cards.get(s, []),
            total=totals.get(s, 0),
            offset=0,
        )
        for s in TaskStatus
    ]


_ACTIVE_RUNS = (
    select(Run.task_id, func.count())
    .where(
        col(Run.task_id).in_(_TASK_IDS),
        col(Run.status).in_([RunStatus.queued, RunStatus.running]),
    )
    .group_by(col(Run.task_id))
)


def active_runs(*, session: Session, task_ids: list[int]) -> dict[int, int]:
    """Queued or running runs per task."""
    rows = session.connection().execute(_ACTIVE_RUNS, {"task_ids": task_ids})
    return {task_id: int(count) for task_id, count in rows}


_NEWEST_RUN_FAILED = select(Run.task_id).where(
    col(Run.id).in_(
        select(func.max(Run.id))
        .where(col(Run.task_id).in_(_TASK_IDS))
        .group_by(col(Run.task_id))
        .scalar_subquery()
    ),
    Run.status == RunStatus.failed,
)


def failed_tasks(*, session: Session, task_ids: list[int]) -> set[int]:
    """The tasks whose newest run failed (a card flags them until a retry or a new run)."""
    return set(session.connection().execute(_NEWEST_RUN_FAILED, {"task_ids": task_ids}).scalars())


@dataclass(frozen=True)
class AgentRow:
    agent: Agent
    model: Model | None
    endpoint: ModelEndpoint | None

    @property
    def healthy(self) -> bool | None:
        if self.endpoint is None:
            return None
        return bool(self.endpoint.enabled and self.endpoint.health_ok)


_AGENTS_WITH_MODELS = (
    select(Agent, Model, ModelEndpoint)
    .join(Model, col(Model.id) == col(Agent.model_id), isouter=True)
    .join(ModelEndpoint, col(ModelEndpoint.id) == col(Model.endpoint_id), isouter=True)
    .where(Agent.workspace_id == _WORKSPACE)
    .order_by(col(Agent.name))
)


def agents_with_models(*, session: Session, workspace: Workspace) -> list[AgentRow]:
    rows = session.exec(_AGENTS_WITH_MODELS, params={"workspace_id": workspace.id}).all()
    return [AgentRow(agent, model, endpoint) for agent, model, endpoint in rows]


_FEED = (
    select(Event, User)
    .join(User, col(User.id) == col(Event.actor_user_id), isouter=True)
    .where(Event.workspace_id == _WORKSPACE)
    .order_by(col(Event.id).desc())
    .limit(FEED_SIZE)
)


def feed(*, session: Session, workspace: Workspace) -> list[tuple[Event, User | None]]:
    """The newest activity, newest first."""
    rows = session.exec(_FEED, params={"workspace_id": workspace.id}).all()
    return [(event, user) for event, user in rows]


@dataclass(frozen=True)
class FeedLine:
    """One line of the activity feed: who (a person or an agent) did what, to which task, when."""

    id: int | None
    who: str
    colour: str | None
    verb: str
    subject: str
    task: Task | None
    at: datetime
    failed: bool


def _task_id(event: Event) -> int | None:
    return event.data.get("task_id") or (event.subject_id if event.subject_type == "task" else None)


_EVALUATION_TASKS = select(SuiteResult.task_id, SuiteResult.judge_task_id).where(
    col(SuiteResult.task_id).in_(_TASK_IDS) | col(SuiteResult.judge_task_id).in_(_TASK_IDS)
)


def _evaluation_tasks(session: Session, task_ids: list[int | None]) -> set[int]:
    ids = [task_id for task_id in task_ids if task_id]
    if not ids:
        return set()
    rows = session.connection().execute(_EVALUATION_TASKS, {"task_ids": ids})
    return {task_id for row in rows for task_id in row if task_id is not None}


def feed_lines(*, session: Session, workspace: Workspace) -> list[FeedLine]:
    """The newest activity, newest first, with the agent that ran and the task it was for."""
    lines = []
    events = feed(session=session, workspace=workspace)
    evaluation = _evaluation_tasks(session, [_task_id(event) for event, _ in events])
    for event, user in events:
        task_id = _task_id(event)
        if task_id in evaluation:  # a suite run's many runs are shown under the suite
            continue
        task = session.get(Task, task_id) if task_id else None
        run = session.get(Run, event.subject_id) if event.subject_type == "run" else None
        agent = session.get(Agent, run.agent_id) if run and run.agent_id else None
        who = agent.name if agent else (user.display_name if user else "Switchboard")
        name = event.data.get("title") or event.data.get("name")
        subject = "" if run else event.subject_type + (f" “{name}”" if name else "")
        lines.append(
            FeedLine(
                id=event.id, who=who, colour=agent.colour if agent else None, verb=event.verb,
                subject=subject, task=task, at=event.created_at, failed=event.verb == "failed",
            )
        )  # fmt: skip
    return lines


def run_line(
    *, session: Session, workspace_id: int, run_id: int, status: str, at: datetime
) -> FeedLine | None:
    """A live feed line for a run's state change (None when the run is gone, or belongs to
    another workspace: a feed never names another workspace's task)."""
    run = session.get(Run, run_id)
    task = session.get(Task, run.task_id) if run is not None else None
    if run is None or task is None or task.workspace_id != workspace_id:
        return None
    agent = session.get(Agent, run.agent_id) if run.agent_id else None
    return FeedLine(
        id=None, who=agent.name if agent else "A run", colour=agent.colour if agent else None,
        verb=status, subject="", task=task, at=at,
        failed=status == RunStatus.failed,
    )  # fmt: skip
