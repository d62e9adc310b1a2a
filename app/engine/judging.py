"""A judge agent votes on a comparison: a normal run on its model's queue, then its verdict.

The judge is asked in a thread of its own in the task (``ask_apart``): the question and the
compared answers lettered as on the compare page, and nothing that names the agents or models
that wrote them. When its run ends, ``settle`` reads the verdict from the answer — a line
``Verdict: A`` (or B, C, D, tie, both bad) and an optional ``Reason: …`` — and casts the
judge's vote; model output is untrusted, so an answer with no verdict, or with two that
disagree, casts nothing and says why. ``settle`` is idempotent (a conditional UPDATE on the
judgement's status): the worker calls it after the run, and the compare page calls it again for
a judgement whose run ended while its message was lost.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from app.db import session_scope
from app.engine.runs import ACTIVE_STATUSES, Started, ask_apart
from app.models import (
    Agent,
    Comparison,
    Judgement,
    JudgementStatus,
    Message,
    Run,
    RunStatus,
    Task,
    User,
    VoteOutcome,
)
from app.services import NotFound, ServiceError
from app.services.comparisons import LETTERS, branch_ids, cast_judge_vote

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 8_000  # per answer in the judge's prompt: four of them fit any message
EXCERPT_CHARS = 80


def judge_prompt(question: str, answers: list[str]) -> str:
    """What the judge is asked: the question and the lettered answers, nothing more."""
    letters = LETTERS[: len(answers)]
    parts = [
        "Judge the answers to a question. Read the question and each answer, then say which "
        "answer is better.",
        f"Question:\n<<<\n{question.strip()}\n>>>",
    ]
    for letter, text in zip(letters, answers, strict=True):
        cut = text.strip()
        if len(cut) > MAX_ANSWER_CHARS:
            cut = cut[:MAX_ANSWER_CHARS] + "\n[… the rest of this answer is cut …]"
        parts.append(f"Answer {letter}:\n<<<\n{cut}\n>>>")
    if len(answers) == 2:
        choice = "A, B, tie or both bad"
    else:
        choice = "the letter of the best answer (" + ", ".join(letters) + ")"
    parts.append(f"Reply with two lines:\nVerdict: {choice}\nReason: one short sentence")
    return "\n\n".join(parts)


@dataclass(frozen=True)
class Verdict:
    """A verdict read from a judge's answer: an outcome, the winning column (0-based) for a
    best-of-N, and the judge's reason."""

    outcome: VoteOutcome
    column: int | None
    reason: str


class Unreadable(Exception):
    """No single verdict could be read from the judge's answer; the message says why."""

    @property
    def message(self) -> str:
        return str(self.args[0])


_VERDICT_LINE = re.compile(r"^[\s>#*_`-]*verdict[\s*_`]*[:=\-–]\s*(?P<rest>.*)$", re.I | re.M)
_REASON_LINE = re.compile(r"^[\s>#*_`-]*reason[\s*_`]*[:=\-–]\s*(?P<rest>.+)$", re.I | re.M)
_TIE = re.compile(r"\btie\b", re.I)
_BOTH_BAD = re.compile(r"\bboth(?:\s+are)?\s+bad\b|\bboth_bad\b|\bneither\b", re.I)
_LETTERS = re.compile(r"\b([A-D])\b")  # capitals only: "a" is an article ("a tie")
_LONE_LETTER = re.compile(r"(?:answer\s+)?([a-d])", re.I)


def _named(rest: str) -> set[str]:
    """What one ``Verdict:`` line names: letters, ``tie``, ``both_bad`` (ideally one)."""
    plain = re.sub(r"[*_`\"'“”.,;:!()\[\]]", " ", rest).strip()
    named = set(_LETTERS.findall(plain))
    if not named and (lone := _LONE_LETTER.fullmatch(plain)):
        named.add(lone[1].upper())
    if _TIE.search(plain):
        named.add(VoteOutcome.tie)
    if _BOTH_BAD.search(plain):
        named.add(VoteOutcome.both_bad)
    return named


def read_verdict(text: str, *, columns: int) -> Verdict:
    """The verdict in a judge's answer; raises Unreadable with a reason a person can act on.

    Strict on purpose: each ``Verdict:`` line must name exactly one choice, and all of them the
    same one — an answer that echoes the instructions ("Verdict: A, B, tie or both bad") or
    hedges ("B, though A is close") casts no vote."""
    lines = [match["rest"] for match in _VERDICT_LINE.finditer(text)]
    letters = LETTERS[:columns]
    if not lines:
        began = " ".join(text.split())[:EXCERPT_CHARS] or "(nothing)"
        raise Unreadable(
            f"No vote: the judge's answer has no line like “Verdict: A” (it began: “{began}”)."
        )
    chosen: set[str] = set()
    for rest in lines:
        named = _named(rest)
        shown = " ".join(rest.split())[:EXCERPT_CHARS]
        if len(named) != 1:
            what = "names no choice" if not named else "names more than one choice"
            raise Unreadable(f"No vote: the judge's verdict “{shown}” {what}.")
        chosen |= named
    if len(chosen) > 1:
        raise Unreadable("No vote: the judge gave verdicts that disagree with each other.")
    (choice,) = chosen
    if choice in (VoteOutcome.tie, VoteOutcome.both_bad):
        if columns > 2:
            raise Unreadable(f"No vote: with {columns} answers the judge must pick the best one.")
        outcome, column = VoteOutcome(choice), None
    elif choice not in letters:
        raise Unreadable(f"No vote: the judge chose {choice}, but the answers are {letters}.")
    elif columns == 2:
        outcome, column = (VoteOutcome.a if choice == "A" else VoteOutcome.b), None
    else:
        outcome, column = VoteOutcome.best, letters.index(choice)
    reason = _REASON_LINE.search(text)
    return Verdict(outcome, column, reason["rest"].strip() if reason else "")


def judge_agents(*, session: Session, workspace_id: int) -> list[Agent]:
    """The workspace's agents that can judge (those with a model)."""
    return list(session.exec(_JUDGE_AGENTS, params={"workspace_id": workspace_id}).all())


def ask_judge(
    *, session: Session, comparison: Comparison, agent_id: int, author: User
) -> tuple[Judgement, Started]:
    """Have agent ``agent_id`` judge the comparison: its run, queued once the caller commits."""
    task = session.get(Task, comparison.task_id)
    assert task is not None
    agent = session.get(Agent, agent_id)
    if agent is None or agent.workspace_id != task.workspace_id:
        raise NotFound("No such agent in this workspace.")
    messages = [session.get(Message, i) for i in branch_ids(session=session, comparison=comparison)]
    answers = [m for m in messages if m is not None]
    live = session.exec(
        select(Run.id).where(
            col(Run.output_message_id).in_([m.id for m in answers]),
            col(Run.status).in_(ACTIVE_STATUSES),
        )
    ).first()
    if live is not None:
        raise ServiceError("Wait for every answer to finish before asking the judge.")
    if any(not m.content.strip() for m in answers):
        raise ServiceError("An answer is empty: there is nothing for the judge to compare.")
    pending = session.exec(
        select(Judgement.id).where(
            Judgement.comparison_id == comparison.id,
            Judgement.agent_id == agent.id,
            Judgement.status == JudgementStatus.pending,
        )
    ).first()
    if pending is not None:
        raise ServiceError(f"{agent.name} is judging this comparison already.")
    first = answers[0]
    question = session.get(Message, first.parent_id) if first.parent_id else None
    prompt = judge_prompt(question.content if question else task.brief or task.title,
                          [m.content for m in answers])  # fmt: skip
    started = ask_apart(session=session, task=task, author=author, content=prompt,
                        agent_id=agent.id)  # type: ignore[arg-type]  # fmt: skip
    judgement = Judgement(
        comparison_id=comparison.id,  # type: ignore[arg-type]
        agent_id=agent.id,
        run_id=started.runs[0].id,  # type: ignore[arg-type]
        created_by_id=author.id,
    )
    session.add(judgement)
    session.flush()
    return judgement, started


# Built once: a compare page asks them on every view.
_JUDGEMENTS = (
    select(Judgement)
    .where(Judgement.comparison_id == sa.bindparam("comparison_id"))
    .order_by(col(Judgement.id).desc())
)
_ENDED = select(Run.id).where(
    col(Run.id).in_(sa.bindparam("ids", expanding=True)), col(Run.status).not_in(ACTIVE_STATUSES)
)
_JUDGE_AGENTS = (
    select(Agent)
    .where(Agent.workspace_id == sa.bindparam("workspace_id"), col(Agent.model_id).isnot(None))
    .order_by(col(Agent.name))
)


def judgements_of(*, session: Session, comparison: Comparison) -> list[Judgement]:
    """The judgements asked on a comparison, newest first. One whose run has ended but is
    still pending (its follow-up was lost) is settled first, in a transaction of its own — so
    the caller's transaction is ended first; the caller must have nothing uncommitted."""

    def load() -> list[Judgement]:
        return list(session.exec(_JUDGEMENTS, params={"comparison_id": comparison.id}).all())

    found = load()
    pending = [j.run_id for j in found if j.status == JudgementStatus.pending]
    ended = session.exec(_ENDED, params={"ids": pending}).all() if pending else []
    if not ended:
        return found
    session.commit()
    for run_id in ended:
        settle(run_id=run_id)  # type: ignore[arg-type]
    session.expire_all()
    return load()


def settle(*, run_id: int) -> None:
    """After a judge's run: its vote, or why there is none (idempotent)."""
    for attempt in (1, 2, 3):
        try:
            with session_scope() as session:
                judgement = session.exec(
                    select(Judgement).where(Judgement.run_id == run_id)
                ).first()
                if judgement is not None:
                    _settle_in(session, judgement)
            return
        except IntegrityError:
            # The same judge's other run cast its vote on this comparison meanwhile: once more,
            # and the vote is replaced.
            if attempt == 3:
                raise
        except OperationalError as exc:
            # SQLite: a write after a read whose snapshot another settler has since changed
            # cannot wait for the lock; look again in a fresh transaction (it is settled now).
            if "locked" not in str(exc) or attempt == 3:
                raise


def _settle_in(session: Session, judgement: Judgement) -> None:
    """Settle a pending judgement whose run has ended, in the caller's transaction."""
    run = session.get(Run, judgement.run_id)
    if run is None or run.status in ACTIVE_STATUSES:
        return
    comparison = session.get(Comparison, judgement.comparison_id)
    agent = session.get(Agent, judgement.agent_id) if judgement.agent_id else None
    answer = session.get(Message, run.output_message_id) if run.output_message_id else None
    verdict, message = None, None
    if run.status != RunStatus.succeeded:
        status = JudgementStatus.failed
        why = f": {run.error}" if run.error else "."
        message = f"No vote: the judge's run {run.status}{why}"
    elif comparison is None or agent is None or answer is None:
        status, message = JudgementStatus.failed, "No vote: the judge agent was deleted."
    else:
        columns = branch_ids(session=session, comparison=comparison)
        try:
            verdict = read_verdict(answer.content, columns=len(columns))
            status = JudgementStatus.voted
        except Unreadable as exc:
            status, message = JudgementStatus.unreadable, exc.message
    # Of two settlers (the worker and a page), one moves it on from pending and casts the vote.
    moved = session.execute(  # type: ignore[attr-defined]
        sa.update(Judgement)
        .where(col(Judgement.id) == judgement.id, col(Judgement.status) == JudgementStatus.pending)
        .values(status=status, message=message)
    ).rowcount
    if not moved:
        session.refresh(judgement)
        return
    if verdict is not None and comparison is not None and agent is not None:
        columns = branch_ids(session=session, comparison=comparison)
        vote = cast_judge_vote(
            session=session, comparison=comparison, judge=agent, outcome=verdict.outcome,
            winner_message_id=columns[verdict.column] if verdict.column is not None else None,
            reason=verdict.reason,
        )  # fmt: skip
        session.execute(  # type: ignore[attr-defined]
            sa.update(Judgement).where(col(Judgement.id) == judgement.id).values(vote_id=vote.id)
        )
    session.flush()
    session.refresh(judgement)
    log.info("judgement %s on comparison %s: %s", judgement.id, judgement.comparison_id, status)
