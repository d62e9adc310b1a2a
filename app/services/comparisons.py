"""Comparisons: two to four branches side by side, word differences, votes, and choosing the
branch a task continues on."""

from __future__ import annotations

import difflib
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.engine.runs import Started, ask
from app.models import (
    Agent,
    Comparison,
    ComparisonBranch,
    MainBranch,
    Message,
    Model,
    Run,
    RunStatus,
    Task,
    User,
    Vote,
    VoteOutcome,
)
from app.models.common import utcnow
from app.services import NotFound, ServiceError
from app.services.workspaces import record_event

TWO_WAY = {VoteOutcome.a, VoteOutcome.b, VoteOutcome.tie, VoteOutcome.both_bad}
_random = random.SystemRandom()


def create_comparison(
    *, session: Session, task: Task, author: User, message_ids: list[int], blind: bool = False
) -> Comparison:
    """Compare the branches ending at ``message_ids`` (2–4 messages of the task)."""
    if not 2 <= len(message_ids) <= 4:
        raise ServiceError("Compare two to four branches.")
    if len(set(message_ids)) != len(message_ids):
        raise ServiceError("Each branch can appear once in a comparison.")
    found = session.exec(
        select(Message.id).where(col(Message.id).in_(message_ids), Message.task_id == task.id)
    ).all()
    if len(found) != len(message_ids):
        raise NotFound("No such message in this task.")
    comparison = Comparison(task_id=task.id, blind=blind, created_by_id=author.id)  # type: ignore[arg-type]
    session.add(comparison)
    session.flush()
    session.add_all(
        ComparisonBranch(comparison_id=comparison.id, message_id=message_id, position=position)  # type: ignore[arg-type]
        for position, message_id in enumerate(message_ids)
    )
    session.flush()
    record_event(
        session=session, workspace_id=task.workspace_id, actor=author, verb="compared",
        subject_type="comparison", subject_id=comparison.id, data={"task_id": task.id},
    )  # fmt: skip
    return comparison


def existing_comparison(
    *, session: Session, task: Task, message_ids: list[int], blind: bool
) -> Comparison | None:
    """The task's comparison of exactly these branches (blind or not, as asked), if any."""
    wanted = set(message_ids)
    candidates = session.exec(
        select(ComparisonBranch.comparison_id)
        .join(Comparison, col(Comparison.id) == col(ComparisonBranch.comparison_id))
        .where(
            Comparison.task_id == task.id,
            Comparison.blind == blind,
            col(ComparisonBranch.message_id).in_(wanted),
        )
        .distinct()
    ).all()
    for comparison_id in sorted(candidates):
        comparison = session.get(Comparison, comparison_id)
        if comparison and set(branch_ids(session=session, comparison=comparison)) == wanted:
            return comparison
    return None


def compare_once(
    *, session: Session, task: Task, author: User, message_ids: list[int], blind: bool = False
) -> Comparison:
    """The comparison of these branches: the one made already (its votes with it), or a new
    one."""
    found = existing_comparison(session=session, task=task, message_ids=message_ids, blind=blind)
    return found or create_comparison(
        session=session, task=task, author=author, message_ids=message_ids, blind=blind
    )


@dataclass(frozen=True)
class PastComparison:
    """A comparison of a task, for its page: how many branches, and the votes cast."""

    comparison: Comparison
    branches: int
    votes: list[str]


# Built once: the task and compare pages ask them on every view.
_COMPARISONS_OF = (
    select(Comparison)
    .where(Comparison.task_id == sa.bindparam("task_id"))
    .order_by(col(Comparison.id).desc())
)
_BRANCHES_OF = (
    select(ComparisonBranch.comparison_id, ComparisonBranch.message_id)
    .where(col(ComparisonBranch.comparison_id).in_(sa.bindparam("ids", expanding=True)))
    .order_by(col(ComparisonBranch.position))
)
_VOTES_OF = (
    select(Vote)
    .where(col(Vote.comparison_id).in_(sa.bindparam("ids", expanding=True)))
    .order_by(col(Vote.id))
)


_BRANCH_IDS = (
    select(ComparisonBranch.message_id)
    .where(ComparisonBranch.comparison_id == sa.bindparam("comparison_id"))
    .order_by(col(ComparisonBranch.position))
)
_VOTE_BY = select(Vote).where(
    Vote.comparison_id == sa.bindparam("comparison_id"),
    Vote.voter_user_id == sa.bindparam("voter_id"),
)
_VOTES = (
    select(Vote).where(Vote.comparison_id == sa.bindparam("comparison_id")).order_by(col(Vote.id))
)
_COLUMN_MESSAGES = select(Message).where(col(Message.id).in_(sa.bindparam("ids", expanding=True)))
_COLUMN_RUNS = (
    select(Run)
    .where(col(Run.output_message_id).in_(sa.bindparam("ids", expanding=True)))
    .order_by(col(Run.id))
)
_COLUMN_AGENTS = select(Agent).where(col(Agent.id).in_(sa.bindparam("ids", expanding=True)))
_COLUMN_MODELS = select(Model).where(col(Model.id).in_(sa.bindparam("ids", expanding=True)))


def comparisons_of(*, session: Session, task: Task) -> list[PastComparison]:
    """The task's comparisons, newest first, each with its votes in words ("A is better",
    "C is best"): three queries however many comparisons the task has."""
    comparisons = session.exec(_COMPARISONS_OF, params={"task_id": task.id}).all()
    if not comparisons:
        return []
    ids = [c.id for c in comparisons]
    branches: dict[int, list[int]] = {}
    for comparison_id, message_id in session.connection().execute(_BRANCHES_OF, {"ids": ids}):
        branches.setdefault(comparison_id, []).append(message_id)
    votes: dict[int, list[Vote]] = {}
    for vote in session.exec(_VOTES_OF, params={"ids": ids}).all():
        votes.setdefault(vote.comparison_id, []).append(vote)
    found = []
    for comparison in comparisons:
        ordered = branches.get(comparison.id or 0, [])
        letters = {message_id: "ABCD"[i] for i, message_id in enumerate(ordered)}
        words = [_vote_words(vote, letters) for vote in votes.get(comparison.id or 0, [])]
        found.append(PastComparison(comparison, len(ordered), words))
    return found


VOTE_WORDS = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both are bad"}


def _vote_words(vote: Vote, letters: dict[int, str]) -> str:
    if vote.outcome == VoteOutcome.best:
        return f"{letters.get(vote.winner_message_id or 0, '?')} is best"
    return VOTE_WORDS.get(vote.outcome, vote.outcome)


@dataclass
class Battle:
    """A message sent to two contestants drawn at random, and its blind comparison."""

    started: Started
    comparison: Comparison


def battle(
    *,
    session: Session,
    task: Task,
    author: User,
    content: str,
    parent_id: int | None = None,
    distinct_models: bool = True,
) -> Battle:
    """Send ``content`` to two agents of the workspace drawn at random (by default running
    two different models) and open a blind comparison of their answers."""
    agents = [
        agent
        for agent in session.exec(
            select(Agent).where(
                Agent.workspace_id == task.workspace_id, col(Agent.model_id).isnot(None)
            )
        ).all()
    ]
    if distinct_models:
        by_model: dict[int | None, list[Agent]] = {}
        for agent in agents:
            by_model.setdefault(agent.model_id, []).append(agent)
        if len(by_model) < 2:
            raise ServiceError(
                "A battle needs agents on two different models; add one on the Agents page."
            )
        models = _random.sample(list(by_model), 2)
        chosen = [_random.choice(by_model[model]) for model in models]
    else:
        if len(agents) < 2:
            raise ServiceError(
                "A battle needs two agents with a model; add one on the Agents page."
            )
        chosen = _random.sample(agents, 2)
    started = ask(
        session=session, task=task, author=author, content=content, parent_id=parent_id,
        agent_ids=[agent.id for agent in chosen if agent.id is not None],
    )  # fmt: skip
    answers = [run.output_message_id for run in started.runs if run.output_message_id]
    comparison = create_comparison(
        session=session, task=task, author=author, message_ids=answers, blind=True
    )
    return Battle(started, comparison)


def branch_ids(*, session: Session, comparison: Comparison) -> list[int]:
    rows = session.connection().execute(_BRANCH_IDS, {"comparison_id": comparison.id})
    return list(rows.scalars())


def vote_of(*, session: Session, comparison: Comparison, voter: User) -> Vote | None:
    """``voter``'s vote on the comparison, if they cast one."""
    params = {"comparison_id": comparison.id, "voter_id": voter.id}
    return session.exec(_VOTE_BY, params=params).first()


def _winner(branches: list[int], outcome: VoteOutcome, winner_message_id: int | None) -> int | None:
    """The winning branch a verdict names (None for a tie or both bad); refuses a verdict that
    does not fit the number of branches."""
    if len(branches) == 2 and outcome not in TWO_WAY:
        raise ServiceError("With two branches, vote A, B, tie or both bad.")
    if len(branches) > 2 and outcome != VoteOutcome.best:
        raise ServiceError("With more than two branches, pick the best one.")
    if outcome == VoteOutcome.best and winner_message_id not in branches:
        raise ServiceError("Pick the best branch among those compared.")
    if outcome == VoteOutcome.a:
        return branches[0]
    if outcome == VoteOutcome.b:
        return branches[1]
    return winner_message_id if outcome == VoteOutcome.best else None


def cast_vote(
    *,
    session: Session,
    comparison: Comparison,
    voter: User,
    outcome: VoteOutcome,
    winner_message_id: int | None = None,
) -> Vote:
    """Record ``voter``'s verdict; voting again replaces it."""
    branches = branch_ids(session=session, comparison=comparison)
    winner_message_id = _winner(branches, outcome, winner_message_id)
    vote = vote_of(session=session, comparison=comparison, voter=voter) or Vote(
        comparison_id=comparison.id,  # type: ignore[arg-type]
        voter_user_id=voter.id,
        outcome=outcome,
    )
    vote.outcome = outcome
    vote.winner_message_id = winner_message_id
    vote.created_at = utcnow()
    session.add(vote)
    session.flush()
    task = session.get(Task, comparison.task_id)
    assert task is not None
    record_event(
        session=session, workspace_id=task.workspace_id, actor=voter, verb="voted",
        subject_type="comparison", subject_id=comparison.id,
        data={"task_id": task.id, "outcome": str(outcome)},
    )  # fmt: skip
    return vote


MAX_REASON_CHARS = 300


def cast_judge_vote(
    *,
    session: Session,
    comparison: Comparison,
    judge: Agent,
    outcome: VoteOutcome,
    winner_message_id: int | None = None,
    reason: str = "",
) -> Vote:
    """Record a judge agent's verdict with its short reason; the judge judging again replaces
    its vote. Kept apart from people's votes (``Vote.judge``)."""
    branches = branch_ids(session=session, comparison=comparison)
    winner_message_id = _winner(branches, outcome, winner_message_id)
    vote = session.exec(
        select(Vote).where(Vote.comparison_id == comparison.id, Vote.judge_agent_id == judge.id)
    ).first() or Vote(comparison_id=comparison.id, judge_agent_id=judge.id, outcome=outcome)  # type: ignore[arg-type]
    vote.judge = True
    vote.outcome = outcome
    vote.winner_message_id = winner_message_id
    vote.reason = " ".join(reason.split())[:MAX_REASON_CHARS] or None
    vote.created_at = utcnow()
    session.add(vote)
    session.flush()
    task = session.get(Task, comparison.task_id)
    assert task is not None
    record_event(
        session=session, workspace_id=task.workspace_id, actor=None, verb="judged",
        subject_type="comparison", subject_id=comparison.id,
        data={"task_id": task.id, "outcome": str(outcome), "agent_id": judge.id},
    )  # fmt: skip
    return vote


def votes_of(*, session: Session, comparison: Comparison) -> list[Vote]:
    return list(session.exec(_VOTES, params={"comparison_id": comparison.id}).all())


def continue_with(*, session: Session, task: Task, message_id: int, actor: User) -> MainBranch:
    """Make the branch through ``message_id`` the one the task page opens on."""
    message = session.get(Message, message_id)
    if message is None or message.task_id != task.id:
        raise NotFound("No such message in this task.")
    main = session.get(MainBranch, task.id) or MainBranch(task_id=task.id, message_id=message_id)  # type: ignore[arg-type]
    main.message_id = message_id
    main.chosen_by_id = actor.id
    main.chosen_at = utcnow()
    session.add(main)
    session.flush()
    record_event(
        session=session, workspace_id=task.workspace_id, actor=actor, verb="continued with",
        subject_type="message", subject_id=message_id, data={"task_id": task.id},
    )  # fmt: skip
    return main


@dataclass(frozen=True)
class Piece:
    text: str
    changed: bool


@dataclass(frozen=True)
class Diff:
    """``other`` cut into pieces; ``cut`` when only the first ``MAX_DIFF_WORDS`` were compared
    (the rest is shown unmarked)."""

    pieces: tuple[Piece, ...]
    cut: bool


# Words are compared without their spacing, and each carries the space after it, so spaces
# are not the commonest "word" (which makes difflib's matching quadratic). Past
# MAX_DIFF_WORDS words nothing is compared: the work per pair of answers stays bounded however
# long the answers are.
_WORDS = re.compile(r"^\s+|\S+\s*")
MAX_DIFF_WORDS = 2000


def _pieces(units: list[str], changed: bool) -> list[Piece]:
    """``units`` as pieces; a changed run is marked without the space after its last word."""
    text = "".join(units)
    if not changed or not text:
        return [Piece(text, False)] if text else []
    word = text.rstrip()
    return [Piece(word, True)] + ([Piece(text[len(word) :], False)] if word != text else [])


@lru_cache(maxsize=64)
def _diff(baseline: str, other: str) -> Diff:
    base_units = _WORDS.findall(baseline)
    units = _WORDS.findall(other)
    compared, rest = units[:MAX_DIFF_WORDS], units[MAX_DIFF_WORDS:]
    matcher = difflib.SequenceMatcher(
        a=[unit.strip() for unit in base_units[:MAX_DIFF_WORDS]],
        b=[unit.strip() for unit in compared],
        autojunk=False,
    )
    pieces: list[Piece] = []
    for tag, _, _, start, end in matcher.get_opcodes():
        for piece in _pieces(compared[start:end], changed=tag != "equal"):
            if pieces and pieces[-1].changed == piece.changed:
                pieces[-1] = Piece(pieces[-1].text + piece.text, piece.changed)
            else:
                pieces.append(piece)
    if rest:
        pieces.append(Piece("".join(rest), changed=False))
    return Diff(tuple(pieces), cut=bool(rest) or len(base_units) > MAX_DIFF_WORDS)


NOT_COMPARED = Diff((), cut=False)


def word_diff(baseline: str, other: str) -> Diff:
    """``other`` in pieces, the words that differ from ``baseline`` marked; computed once per
    pair of texts (cached by content), never again per viewer or per poll."""
    return _diff(baseline, other)


def diff_cache_info() -> Any:
    """How often the diff was computed (misses) and reused (hits)."""
    return _diff.cache_info()


@dataclass(frozen=True)
class Block:
    """A stretch of a compared answer: prose (wrapped) or a fenced code block (kept as
    written, scrolling sideways inside its column), each with its marked pieces."""

    code: bool
    pieces: tuple[Piece, ...]


_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.M)


def diff_blocks(diff: Diff) -> list[Block]:
    """The diff's pieces cut into prose and code blocks at the lines that open or close a
    fence (the fence lines belong to their code block)."""
    text = "".join(piece.text for piece in diff.pieces)
    cuts: list[int] = []  # offsets where the kind changes
    inside = False
    for fence in _FENCE.finditer(text):
        if not inside:
            cuts.append(fence.start())
        else:
            end = text.find("\n", fence.end())
            cuts.append(len(text) if end == -1 else end + 1)
        inside = not inside
    blocks: list[Block] = []
    current: list[Piece] = []
    code, offset, bounds = False, 0, iter([*cuts, len(text) + 1])
    bound = next(bounds)
    for piece in diff.pieces:
        rest = piece.text
        while rest:
            while offset >= bound:  # a cut here: the block so far is done
                if current:
                    blocks.append(Block(code, tuple(current)))
                current, code, bound = [], not code, next(bounds)
            taken = rest[: bound - offset]
            current.append(Piece(taken, piece.changed))
            offset, rest = offset + len(taken), rest[len(taken) :]
    if current:
        blocks.append(Block(code, tuple(current)))
    return blocks


LETTERS = "ABCD"


@dataclass
class Column:
    """One branch of a comparison as the page shows it."""

    letter: str
    message: Message
    run: Run | None
    agent: Agent | None
    model: Model | None
    live: bool
    diff: Diff

    @property
    def blocks(self) -> list[Block]:
        return diff_blocks(self.diff)


def columns_of(
    *, session: Session, message_ids: list[int], baseline: int,
    agents: dict[int | None, Agent] | None = None,
) -> list[Column]:  # fmt: skip
    """The compared answers, lettered, each marked against the ``baseline``-th one (their
    messages, runs, agents and models read in one query each, not one per column);
    ``agents``: the workspace's by id, when the caller has read them already."""
    ids = {"ids": message_ids}
    by_id = {m.id: m for m in session.exec(_COLUMN_MESSAGES, params=ids)}
    messages = [by_id.get(message_id) for message_id in message_ids]
    runs: dict[int, Run] = {}
    for answer_run in session.exec(_COLUMN_RUNS, params=ids):
        runs.setdefault(answer_run.output_message_id, answer_run)  # type: ignore[arg-type]
    if agents is None:
        agent_ids = list({m.agent_id for m in messages if m is not None and m.agent_id})
        agents = {a.id: a for a in session.exec(_COLUMN_AGENTS, params={"ids": agent_ids})}
    model_ids = list({r.model_id for r in runs.values() if r.model_id})
    models = {m.id: m for m in session.exec(_COLUMN_MODELS, params={"ids": model_ids})}
    base = messages[baseline]
    base_text = base.content if base else ""
    columns = []
    for letter, message in zip(LETTERS, messages, strict=False):
        assert message is not None
        run: Run | None = runs.get(message.id or 0)
        agent = agents.get(message.agent_id) if message.agent_id else None
        model = models.get(run.model_id) if run and run.model_id else None
        live = bool(run and run.status in (RunStatus.queued, RunStatus.running))
        # A live answer streams in its column; it is compared once it is finished.
        diff = NOT_COMPARED if live else word_diff(base_text, message.content)
        columns.append(Column(letter=letter, message=message, run=run, agent=agent,
                              model=model, live=live, diff=diff))  # fmt: skip
    return columns
