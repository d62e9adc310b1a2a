"""Judging a suite run's answers on a worker, once each answer's run has succeeded.

The checks decided from the answer alone are recorded at once; a ``python`` check becomes a
sandbox check on the checks queue, a ``judge`` check a run of the judge agent in a task of its
own. Both follow the delivery contract of the engine; their outcomes are read from them when
the results are shown. Recording is claimed by a conditional UPDATE on ``answered_at`` (the
finish time of the run attempt judged), so a redelivered or duplicate hook records once, and a
retried run — which finishes again — is judged afresh. A worker that died between the run's
finish and this hook is covered by ``sweep_unjudged``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.db import session_scope
from app.engine.checks import create_check, has_code
from app.engine.runs import MAX_MESSAGE_CHARS, usable_model
from app.evals.kinds import IMMEDIATE, Finding, decide, judge_prompt
from app.models import Agent, Message, Run, RunStatus, SuiteResult, SuiteRun, Task, User, Workspace
from app.models.common import utcnow
from app.services import ServiceError
from app.services.tasks import create_task

SWEEP_GRACE = timedelta(seconds=30)


@dataclass
class FollowUps:
    """What to send after commit: judge runs and sandbox checks."""

    run_ids: list[int] = field(default_factory=list)
    check_ids: list[int] = field(default_factory=list)


def _claim(session: Session, result: SuiteResult, run: Run) -> bool:
    """Take the judging of this attempt of the run; False when it is judged already."""
    return bool(
        session.execute(  # type: ignore[attr-defined]
            sa.update(SuiteResult)
            .where(
                col(SuiteResult.id) == result.id,
                sa.or_(
                    col(SuiteResult.answered_at).is_(None),
                    col(SuiteResult.answered_at) != run.finished_at,
                ),
            )
            .values(
                answered_at=run.finished_at,
                findings=[],
                code_check_id=None,
                judge_task_id=None,
                judge_run_id=None,
            )  # fmt: skip
        ).rowcount
    )


def _start_judge(
    session: Session, result: SuiteResult, suite_run: SuiteRun, rubrics: list[str],
    question: str, answer: str,
) -> tuple[Task | None, Run | None, Finding | None]:  # fmt: skip
    """The judge's run, in a task of its own; or why it could not start."""
    author = session.get(User, suite_run.created_by_id) if suite_run.created_by_id else None
    answering = session.get(Task, result.task_id) if result.task_id else None
    workspace = session.get(Workspace, answering.workspace_id) if answering else None
    if suite_run.judge_agent_id is None or author is None or workspace is None:
        gone = "The judge agent (or the run's author) is gone."
        return None, None, Finding("judge", None, gone, error=True)
    rubric = rubrics[0] if len(rubrics) == 1 else "; ".join(rubrics)
    brief = judge_prompt(rubric=rubric, question=question, answer=answer)
    # Refusals found first: the worker's transaction must not fail halfway through.
    judge = session.get(Agent, suite_run.judge_agent_id)
    try:
        if judge is None or judge.workspace_id != workspace.id:
            raise ServiceError("the judge agent was deleted.")
        usable_model(session, judge)
        if len(brief) > MAX_MESSAGE_CHARS:
            raise ServiceError("the question and answer are too long to be judged.")
    except ServiceError as exc:
        why = f"The judge could not start: {exc.message}"
        return None, None, Finding("judge", None, why, error=True)
    task, started = create_task(
        session=session, workspace=workspace, author=author,
        title=f"Judge · {answering.title}"[:200],  # type: ignore[union-attr]
        brief=brief, agent_ids=[judge.id],  # type: ignore[list-item]
    )  # fmt: skip
    assert started is not None
    return task, started.runs[0], None


def _judge_answer(session: Session, result: SuiteResult, run: Run) -> FollowUps:
    follow = FollowUps()
    suite_run = session.get(SuiteRun, result.suite_run_id)
    answer = session.get(Message, run.output_message_id) if run.output_message_id else None
    task = session.get(Task, run.task_id)
    if suite_run is None or answer is None or task is None or not _claim(session, result, run):
        return follow
    prompt: dict[str, Any] = suite_run.prompts[result.prompt_index]
    checks = prompt.get("checks", [])
    findings = [decide(check, answer.content) for check in checks if check["kind"] in IMMEDIATE]
    tests = [check["tests"] for check in checks if check["kind"] == "python"]
    code_check_id = None
    if tests and not has_code(answer.content):
        findings.append(Finding("python", False, "The answer holds no Python code to test."))
    elif tests:
        check = create_check(
            session=session, task=task, author=None, code_message_id=answer.id,  # type: ignore[arg-type]
            tests_text="\n\n\n".join(tests),
        )  # fmt: skip
        code_check_id = check.id
        follow.check_ids.append(check.id)  # type: ignore[arg-type]
    rubrics = [check["rubric"] for check in checks if check["kind"] == "judge"]
    judge_task = judge_run = None
    if rubrics:
        judge_task, judge_run, failed = _start_judge(
            session, result, suite_run, rubrics, prompt["prompt"], answer.content
        )
        if failed is not None:
            findings.append(failed)
        if judge_run is not None:
            follow.run_ids.append(judge_run.id)  # type: ignore[arg-type]
    session.execute(
        sa.update(SuiteResult)
        .where(col(SuiteResult.id) == result.id)
        .values(
            findings=[f.as_dict() for f in findings],
            code_check_id=code_check_id,
            judge_task_id=judge_task.id if judge_task else None,
            judge_run_id=judge_run.id if judge_run else None,
        )  # fmt: skip
    )
    return follow


def after_run(*, run_id: int) -> FollowUps:
    """After a run: when it answered a suite's prompt, record what its checks found and start
    the ones that take a worker (the caller sends the follow-ups)."""
    with session_scope() as session:
        result = session.exec(select(SuiteResult).where(SuiteResult.run_id == run_id)).first()
        run = session.get(Run, run_id)
        if result is None or run is None or run.status != RunStatus.succeeded:
            return FollowUps()
        if run.finished_at is None:
            return FollowUps()
        return _judge_answer(session, result, run)


def sweep_unjudged() -> FollowUps:
    """Answers whose run succeeded a while ago but were never judged (their worker died
    between the two): judge them now."""
    before = utcnow() - SWEEP_GRACE
    with session_scope() as session:
        run_ids = session.exec(
            select(Run.id)
            .join(SuiteResult, col(SuiteResult.run_id) == col(Run.id))
            .where(
                col(Run.status) == RunStatus.succeeded,
                col(Run.finished_at) < before,
                sa.or_(
                    col(SuiteResult.answered_at).is_(None),
                    col(SuiteResult.answered_at) != col(Run.finished_at),
                ),
            )
        ).all()
    follow = FollowUps()
    for run_id in run_ids:
        more = after_run(run_id=run_id)  # type: ignore[arg-type]
        follow.run_ids += more.run_ids
        follow.check_ids += more.check_ids
    return follow
