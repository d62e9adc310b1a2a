"""A workspace's leaderboard: which model (or agent) people prefer, and what it costs.

Each vote on a comparison becomes pairwise verdicts between the contestants that wrote the
compared answers: A or B is a win, "tie" and "both bad" are ties (neither is better — each side
gets half a win), and "best of N" is a win over every other column. Columns written by the same
contestant tell nothing about the two and are skipped. Judge agents' votes are kept apart and
only count when asked for. Ratings are cached per workspace and filter, keyed by the votes'
state (and, under a tag filter, by which tasks carry the tag), so they are recomputed only when
a vote or a tag changes.

The pass rate comes from evaluation suites (``app.services.suite_results``): the prompts a
model (or agent) passed out of those judged, in the suite runs the filters pick, with a 95 %
Wilson interval.
"""

from __future__ import annotations

import statistics
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from app.models import (
    Agent,
    Comparison,
    ComparisonBranch,
    Model,
    Run,
    RunStatus,
    Suite,
    SuiteRun,
    Task,
    TaskTag,
    Vote,
    VoteOutcome,
)
from app.services import ServiceError
from app.services.ratings import Rating, Verdict, rate, win_chance
from app.services.suite_results import cells_of, wilson


class Grouping(StrEnum):
    model = "model"
    agent = "agent"


@dataclass(frozen=True)
class Filters:
    """What the leaderboard counts: by model or agent, judge votes or not, a date range, the
    tasks with one tag."""

    by: Grouping = Grouping.model
    include_judges: bool = False
    since: datetime | None = None
    until: datetime | None = None
    tag: str | None = None
    suite_id: int | None = None  # the pass rate from this suite's runs only


def filters_from(
    *,
    by: str = "model",
    judges: str = "",
    since: str = "",
    until: str = "",
    tag: str = "",
    suite: str = "",
) -> Filters:
    """Filters from a query string (dates as 2026-11-30, both days included); a clear message
    for each mistake."""
    if by not in (Grouping.model, Grouping.agent):
        raise ServiceError("Group the leaderboard by model or by agent.")

    def day(value: str, label: str) -> date | None:
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ServiceError(f"The {label} date must look like 2026-11-30.") from None

    start, end = day(since, "from"), day(until, "to")
    if start and end and end < start:
        raise ServiceError("The “to” date comes before the “from” date.")
    tag = tag.strip().lower().lstrip("#")
    if len(tag) > 32:
        raise ServiceError("A tag has at most 32 characters.")
    suite = suite.strip()
    if suite and not (suite.isascii() and suite.isdigit() and len(suite) < 10):
        raise ServiceError("Pick a suite from the list.")
    return Filters(
        by=Grouping(by),
        include_judges=judges.lower() in ("1", "on", "true", "yes"),
        since=datetime.combine(start, time(), UTC) if start else None,
        until=datetime.combine(end + timedelta(days=1), time(), UTC) if end else None,
        tag=tag or None,
        suite_id=int(suite) if suite else None,
    )


def _tagged(tag: str) -> SelectOfScalar[int]:
    """The ids of the tasks with ``tag``."""
    return select(TaskTag.task_id).where(TaskTag.tag == tag)


@dataclass
class Row:
    """One contestant (a model or an agent) on the leaderboard."""

    key: int
    name: str
    parameter_count: int | None
    rating: float | None = None
    low: float | None = None
    high: float | None = None
    votes: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    both_bad: int = 0
    median_tokens_per_second: float | None = None
    median_time_to_first_token_ms: float | None = None
    answers: int = 0
    evaluated: int = 0  # suite prompts judged passed or failed
    passed: int = 0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.evaluated if self.evaluated else None

    @property
    def pass_interval(self) -> tuple[float, float] | None:
        return wilson(self.passed, self.evaluated)

    @property
    def pass_rate_per_billion(self) -> float | None:
        rate_, billions = self.pass_rate, self.billions
        return rate_ / billions if rate_ is not None and billions else None

    @property
    def billions(self) -> float | None:
        return self.parameter_count / 1e9 if self.parameter_count else None

    @property
    def win_chance(self) -> float | None:
        """Chance to beat an average contestant of this leaderboard."""
        return win_chance(self.rating) if self.rating is not None else None

    @property
    def win_chance_per_billion(self) -> float | None:
        chance, billions = self.win_chance, self.billions
        return chance / billions if chance is not None and billions else None


@dataclass
class Leaderboard:
    rows: list[Row]
    filters: Filters
    human_votes: int
    judge_votes: int
    judge_agreement: float | None = None
    judge_agreement_count: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _VoteRow:
    vote_id: int
    comparison_id: int
    outcome: str
    winner_message_id: int | None
    is_judge: bool
    voter_user_id: int | None


def _votes(session: Session, workspace_id: int, filters: Filters) -> list[_VoteRow]:
    query = (
        select(  # type: ignore[call-overload]
            Vote.id,
            Vote.comparison_id,
            Vote.outcome,
            Vote.winner_message_id,
            Vote.judge,
            Vote.voter_user_id,
        )  # fmt: skip
        .join(Comparison, col(Comparison.id) == col(Vote.comparison_id))
        .join(Task, col(Task.id) == col(Comparison.task_id))
        .where(Task.workspace_id == workspace_id)
        .order_by(col(Vote.id))
    )
    if filters.since is not None:
        query = query.where(col(Vote.created_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(Vote.created_at) < filters.until)
    if filters.tag is not None:
        query = query.where(col(Task.id).in_(_tagged(filters.tag)))
    return [
        _VoteRow(vid, cid, outcome, winner, bool(judge), voter)
        for vid, cid, outcome, winner, judge, voter in session.exec(query).all()
    ]


def _columns(session: Session, comparison_ids: list[int], by: Grouping) -> dict[int, list[tuple]]:
    """Per comparison: its columns in order, as (message id, contestant id or None)."""
    owner = Run.model_id if by == Grouping.model else Run.agent_id
    rows = session.exec(
        select(  # type: ignore[call-overload]
            ComparisonBranch.comparison_id, ComparisonBranch.message_id, owner
        )
        .outerjoin(Run, col(Run.output_message_id) == col(ComparisonBranch.message_id))
        .where(col(ComparisonBranch.comparison_id).in_(comparison_ids))
        .order_by(col(ComparisonBranch.comparison_id), col(ComparisonBranch.position))
    ).all()
    columns: dict[int, list[tuple]] = {}
    for comparison_id, message_id, contestant in rows:
        columns.setdefault(comparison_id, []).append((message_id, contestant))
    return columns


def verdicts_of(vote: _VoteRow, columns: list[tuple]) -> list[Verdict[int]]:
    """The pairwise verdicts one vote makes between contestants."""
    contestants = [contestant for _, contestant in columns]
    if vote.outcome == VoteOutcome.best:
        winner = next((c for m, c in columns if m == vote.winner_message_id), None)
        if winner is None:
            return []
        return [
            Verdict(winner, other, winner) for other in contestants if other not in (None, winner)
        ]
    if len(columns) != 2 or None in contestants or contestants[0] == contestants[1]:
        return []
    first, second = contestants
    winner = {VoteOutcome.a: first, VoteOutcome.b: second}.get(VoteOutcome(vote.outcome))
    return [Verdict(first, second, winner)]


def _speeds(session: Session, workspace_id: int, filters: Filters) -> dict[int, tuple]:
    owner = Run.model_id if filters.by == Grouping.model else Run.agent_id
    query = (
        select(  # type: ignore[call-overload]
            owner, Run.tokens_per_second, Run.started_at, Run.first_token_at
        )
        .join(Task, col(Task.id) == col(Run.task_id))
        .where(Task.workspace_id == workspace_id, Run.status == RunStatus.succeeded)
    )
    if filters.since is not None:
        query = query.where(col(Run.queued_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(Run.queued_at) < filters.until)
    if filters.tag is not None:
        query = query.where(col(Task.id).in_(_tagged(filters.tag)))
    rows = session.exec(query).all()
    found: dict[int, tuple[list[float], list[float], int]] = {}
    for key, speed, started, first_token in rows:
        if key is None:
            continue
        ttft = (first_token - started).total_seconds() * 1000 if started and first_token else None
        speeds, ttfts, count = found.get(key, ([], [], 0))
        if speed is not None:
            speeds.append(speed)
        if ttft is not None:
            ttfts.append(ttft)
        found[key] = (speeds, ttfts, count + 1)
    return {
        key: (
            statistics.median(speeds) if speeds else None,
            statistics.median(ttfts) if ttfts else None,
            count,
        )
        for key, (speeds, ttfts, count) in found.items()
    }


def _pass_counts(session: Session, workspace_id: int, filters: Filters) -> dict[int, tuple]:
    """(passed, judged) per contestant over the suite runs the filters pick."""
    query = (
        select(SuiteRun)
        .join(Suite, col(Suite.id) == col(SuiteRun.suite_id))
        .where(Suite.workspace_id == workspace_id)
    )
    if filters.suite_id is not None:
        query = query.where(SuiteRun.suite_id == filters.suite_id)
    if filters.since is not None:
        query = query.where(col(SuiteRun.created_at) >= filters.since)
    if filters.until is not None:
        query = query.where(col(SuiteRun.created_at) < filters.until)
    counts: dict[int, tuple[int, int]] = {}
    for cells in cells_of(session, list(session.exec(query).all())).values():
        for cell in cells:
            if cell.status not in ("passed", "failed") or cell.run is None:
                continue
            key = cell.run.model_id if filters.by == Grouping.model else cell.run.agent_id
            if key is None:
                continue
            passed, judged = counts.get(key, (0, 0))
            counts[key] = (passed + (cell.status == "passed"), judged + 1)
    return counts


def _names(session: Session, keys: set[int], by: Grouping) -> dict[int, tuple[str, int | None]]:
    if not keys:
        return {}
    if by == Grouping.model:
        models = session.exec(select(Model).where(col(Model.id).in_(keys))).all()
        return {m.id: (m.name, m.parameter_count) for m in models if m.id is not None}
    rows = session.exec(
        select(Agent, Model)
        .outerjoin(Model, col(Model.id) == col(Agent.model_id))
        .where(col(Agent.id).in_(keys))
    ).all()
    return {
        agent.id: (agent.name, model.parameter_count if model else None)
        for agent, model in rows
        if agent.id is not None
    }


@dataclass(frozen=True)
class _Tally:
    """What the votes say, before names and speeds are added."""

    ratings: dict[int, Rating[int]]
    votes: dict[int, int]
    both_bad: dict[int, int]
    human_votes: int
    judge_votes: int
    agreement: tuple[float | None, int]


# Tallies per (workspace, filters, state of its votes); small, per process. A vote cast, changed
# or removed changes the state, so nothing stale is ever served.
_CACHE: OrderedDict[Hashable, _Tally] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()
fits = 0  # how many tallies were computed (not served from the cache): for tests and benches


def _votes_state(session: Session, workspace_id: int) -> tuple:
    """Changes whenever a vote of the workspace is cast, changed or removed."""
    return tuple(
        session.exec(
            select(  # type: ignore[call-overload]
                sa.func.count(col(Vote.id)),
                sa.func.max(col(Vote.id)),
                sa.func.max(col(Vote.created_at)),
            )  # fmt: skip
            .join(Comparison, col(Comparison.id) == col(Vote.comparison_id))
            .join(Task, col(Task.id) == col(Comparison.task_id))
            .where(Task.workspace_id == workspace_id)
        ).one()
    )


def judge_agreement(votes: list[_VoteRow]) -> tuple[float | None, int]:
    """How often a judge's verdict matches people's on the same comparison (share, count)."""
    people: dict[int, list[tuple[str, int | None]]] = {}
    judges: dict[int, list[tuple[str, int | None]]] = {}
    for vote in votes:
        side = judges if vote.is_judge else people
        side.setdefault(vote.comparison_id, []).append((vote.outcome, vote.winner_message_id))
    pairs = [
        (judged, voted)
        for comparison_id in judges.keys() & people.keys()
        for judged in judges[comparison_id]
        for voted in people[comparison_id]
    ]
    if not pairs:
        return None, 0
    return sum(1 for judged, voted in pairs if judged == voted) / len(pairs), len(pairs)


def _tally(session: Session, workspace_id: int, filters: Filters) -> _Tally:
    global fits
    votes = _votes(session, workspace_id, filters)
    counted = [v for v in votes if filters.include_judges or not v.is_judge]
    columns = _columns(session, sorted({v.comparison_id for v in counted}), filters.by)
    verdicts: list[Verdict[int]] = []
    both_bad: dict[int, int] = {}
    votes_of: dict[int, int] = {}
    for vote in counted:
        made = verdicts_of(vote, columns.get(vote.comparison_id, []))
        verdicts.extend(made)
        for contestant in {c for v in made for c in (v.first, v.second)}:
            votes_of[contestant] = votes_of.get(contestant, 0) + 1
            if vote.outcome == VoteOutcome.both_bad:
                both_bad[contestant] = both_bad.get(contestant, 0) + 1
    fits += 1
    return _Tally(
        ratings={r.contestant: r for r in rate(verdicts)},
        votes=votes_of,
        both_bad=both_bad,
        human_votes=sum(1 for v in votes if not v.is_judge),
        judge_votes=sum(1 for v in votes if v.is_judge),
        agreement=judge_agreement(votes),
    )


def _tag_state(session: Session, filters: Filters) -> tuple[int, ...]:
    """Under a tag filter, the tasks that carry the tag: tagging a task changes the tally."""
    if filters.tag is None:
        return ()
    return tuple(session.exec(_tagged(filters.tag).order_by(col(TaskTag.task_id))).all())


def _cached_tally(session: Session, workspace_id: int, filters: Filters) -> _Tally:
    key = (
        workspace_id, filters, _votes_state(session, workspace_id), _tag_state(session, filters)
    )  # fmt: skip
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    tally = _tally(session, workspace_id, filters)
    with _CACHE_LOCK:
        _CACHE[key] = tally
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return tally


def leaderboard(*, session: Session, workspace_id: int, filters: Filters) -> Leaderboard:
    """The leaderboard of a workspace under ``filters``."""
    tally = _cached_tally(session, workspace_id, filters)
    speeds = _speeds(session, workspace_id, filters)
    passes = _pass_counts(session, workspace_id, filters)
    keys = set(tally.ratings) | set(speeds) | set(passes)
    names = _names(session, keys, filters.by)
    rows = []
    for contestant in keys:
        name, parameters = names.get(contestant, (f"#{contestant} (deleted)", None))
        row = Row(key=contestant, name=name, parameter_count=parameters)
        if contestant in tally.ratings:
            found = tally.ratings[contestant]
            row.rating, row.low, row.high = found.rating, found.low, found.high
            row.wins, row.ties, row.losses = found.wins, found.ties, found.losses
        row.votes = tally.votes.get(contestant, 0)
        row.both_bad = tally.both_bad.get(contestant, 0)
        speed, ttft, answers = speeds.get(contestant, (None, None, 0))
        row.median_tokens_per_second, row.median_time_to_first_token_ms = speed, ttft
        row.answers = answers
        row.passed, row.evaluated = passes.get(contestant, (0, 0))
        rows.append(row)
    rows.sort(key=lambda r: (r.rating is None, -(r.rating or 0), r.name))
    return Leaderboard(
        rows=rows,
        filters=filters,
        human_votes=tally.human_votes,
        judge_votes=tally.judge_votes,
        judge_agreement=tally.agreement[0],
        judge_agreement_count=tally.agreement[1],
    )


LEADERBOARD_COLUMNS = (
    "name", "parameter_count", "rating", "rating_low", "rating_high", "votes", "wins", "ties",
    "losses", "both_bad", "win_chance", "win_chance_per_billion", "median_tokens_per_second",
    "median_time_to_first_token_ms", "answers", "pass_rate", "pass_rate_low", "pass_rate_high",
    "evaluated", "pass_rate_per_billion",
)  # fmt: skip


def leaderboard_records(board: Leaderboard) -> list[dict[str, object]]:
    """The rows as plain records (for JSON and CSV exports), in LEADERBOARD_COLUMNS order."""

    def rounded(value: float | None, digits: int) -> float | None:
        return round(value, digits) if value is not None else None

    return [
        {
            "name": row.name,
            "parameter_count": row.parameter_count,
            "rating": rounded(row.rating, 1),
            "rating_low": rounded(row.low, 1),
            "rating_high": rounded(row.high, 1),
            "votes": row.votes,
            "wins": row.wins,
            "ties": row.ties,
            "losses": row.losses,
            "both_bad": row.both_bad,
            "win_chance": rounded(row.win_chance, 4),
            "win_chance_per_billion": rounded(row.win_chance_per_billion, 4),
            "median_tokens_per_second": rounded(row.median_tokens_per_second, 2),
            "median_time_to_first_token_ms": rounded(row.median_time_to_first_token_ms, 1),
            "answers": row.answers,
            "pass_rate": rounded(row.pass_rate, 4),
            "pass_rate_low": rounded(row.pass_interval[0], 4) if row.pass_interval else None,
            "pass_rate_high": rounded(row.pass_interval[1], 4) if row.pass_interval else None,
            "evaluated": row.evaluated,
            "pass_rate_per_billion": rounded(row.pass_rate_per_billion, 4),
        }  # fmt: skip
        for row in board.rows
    ]


VOTE_COLUMNS = (
    "vote_id", "comparison_id", "task_id", "outcome", "winner_message_id", "voter",
    "judge", "judge_agent", "reason", "created_at", "columns",
)  # fmt: skip


def vote_records(*, session: Session, workspace_id: int) -> list[dict[str, object]]:
    """Every vote of the workspace with what was compared (message ids, agents and models)."""
    votes = session.exec(
        select(Vote, Comparison.task_id)  # type: ignore[call-overload]
        .join(Comparison, col(Comparison.id) == col(Vote.comparison_id))
        .join(Task, col(Task.id) == col(Comparison.task_id))
        .where(Task.workspace_id == workspace_id)
        .order_by(col(Vote.id))
    ).all()
    ids = sorted({vote.comparison_id for vote, _ in votes})
    models = _columns(session, ids, Grouping.model)
    agents = _columns(session, ids, Grouping.agent)
    names = _names(session, {c for cols in models.values() for _, c in cols if c}, Grouping.model)
    agent_names = _names(
        session, {c for cols in agents.values() for _, c in cols if c}, Grouping.agent
    )
    records: list[dict[str, object]] = []
    for vote, task_id in votes:
        columns = [
            {
                "message_id": message_id,
                "model": names.get(model, ("", None))[0] if model else None,
                "agent": agent_names.get(agent, ("", None))[0] if agent else None,
            }
            for (message_id, model), (_, agent) in zip(
                models.get(vote.comparison_id, []), agents.get(vote.comparison_id, []),
                strict=False,
            )
        ]  # fmt: skip
        records.append(
            {
                "vote_id": vote.id, "comparison_id": vote.comparison_id, "task_id": task_id,
                "outcome": vote.outcome, "winner_message_id": vote.winner_message_id,
                "voter": vote.voter_user_id, "judge": vote.judge,
                "judge_agent": agent_names.get(vote.judge_agent_id, ("", None))[0]
                if vote.judge_agent_id else None,
                "reason": vote.reason,
                "created_at": vote.created_at.isoformat(), "columns": columns,
            }
        )  # fmt: skip
    return records
