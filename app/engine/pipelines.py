"""Pipelines: a named sequence of hand-offs on one branch, repeated for up to N rounds.

A pipeline's first step answers the starting message; the steps after it form the loop body,
run ``max_rounds`` times (Coder → [Tester → Coder fixes] × N). A reply that starts with the
stop word (e.g. PASS) ends it early. Each step is an ordinary hand-off run, chained on Celery:
when one finishes, ``advance`` creates the next and returns it for the worker to send.

With ``run_checks``, a step whose answer holds tests is checked against the answer it was
handed (``app.engine.checks.auto_check``); the pipeline then waits for the check, and the next
step is handed the check's summary (``advance_after_check``), so the fixer sees what failed.
``stop_when_checks_pass`` ends the pipeline at the first check that passes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from app.db import session_scope
from app.engine.runs import Started, hand_off, rerun
from app.models import Agent, Check, CheckStatus, Message, Pipeline, Run, RunStatus, Task, User
from app.services import Conflict, NotFound, ServiceError
from app.services.workspaces import record_event

MAX_STEPS = 6


def create_pipeline(
    *,
    session: Session,
    workspace_id: int,
    author: User,
    name: str,
    steps: list[dict[str, Any]],
    max_rounds: int = 1,
    stop_word: str | None = None,
    run_checks: bool = False,
    stop_when_checks_pass: bool = False,
) -> Pipeline:
    """Save a pipeline; steps are ``{"agent_id": …, "instruction": …}``, in order."""
    pipeline = Pipeline(workspace_id=workspace_id, name="", created_by_id=author.id)
    _apply(
        session, pipeline, name=name, steps=steps, max_rounds=max_rounds, stop_word=stop_word,
        run_checks=run_checks, stop_when_checks_pass=stop_when_checks_pass,
    )  # fmt: skip
    session.add(pipeline)
    session.flush()
    return pipeline


def update_pipeline(
    *,
    session: Session,
    pipeline: Pipeline,
    name: str,
    steps: list[dict[str, Any]],
    max_rounds: int = 1,
    stop_word: str | None = None,
    run_checks: bool = False,
    stop_when_checks_pass: bool = False,
) -> Pipeline:
    """Change a saved pipeline as a whole; runs already started keep going with its new steps."""
    _apply(
        session, pipeline, name=name, steps=steps, max_rounds=max_rounds, stop_word=stop_word,
        run_checks=run_checks, stop_when_checks_pass=stop_when_checks_pass,
    )  # fmt: skip
    session.add(pipeline)
    session.flush()
    return pipeline


def delete_pipeline(*, session: Session, pipeline: Pipeline, actor: User) -> None:
    """Delete a pipeline; its runs stay (a step that finishes later starts no next one)."""
    record_event(
        session=session, workspace_id=pipeline.workspace_id, actor=actor, verb="deleted",
        subject_type="pipeline", subject_id=pipeline.id, data={"name": pipeline.name},
    )  # fmt: skip
    session.delete(pipeline)
    session.flush()


def _apply(
    session: Session,
    pipeline: Pipeline,
    *,
    name: str,
    steps: list[dict[str, Any]],
    max_rounds: int,
    stop_word: str | None,
    run_checks: bool,
    stop_when_checks_pass: bool,
) -> None:
    """Check a pipeline's fields and set them; ServiceError for the first mistake."""
    workspace_id = pipeline.workspace_id
    name = name.strip()
    if not name:
        raise ServiceError("Give the pipeline a name.")
    if not 1 <= len(steps) <= MAX_STEPS:
        raise ServiceError(f"A pipeline has between 1 and {MAX_STEPS} steps.")
    if not 1 <= max_rounds <= 10:
        raise ServiceError("Rounds must be between 1 and 10.")
    clean_steps = []
    for number, step in enumerate(steps, start=1):
        agent_id = step.get("agent_id")
        agent = session.get(Agent, agent_id) if isinstance(agent_id, int) else None
        if agent is None or agent.workspace_id != workspace_id:
            raise NotFound(f"Step {number}: no such agent in this workspace.")
        instruction = str(step.get("instruction") or "").strip()
        if number > 1 and not instruction:
            raise ServiceError(f"Step {number}: say what {agent.name} should do with the answer.")
        clean_steps.append({"agent_id": agent.id, "instruction": instruction})
    same_name = select(Pipeline.id).where(
        Pipeline.workspace_id == workspace_id, Pipeline.name == name
    )
    if pipeline.id is not None:
        same_name = same_name.where(col(Pipeline.id) != pipeline.id)
    if session.exec(same_name).first():
        raise Conflict(f"A pipeline named {name!r} exists already.")
    pipeline.name = name
    pipeline.steps = clean_steps
    pipeline.max_rounds = max_rounds
    pipeline.stop_word = (stop_word or "").strip() or None
    pipeline.run_checks = run_checks or stop_when_checks_pass
    pipeline.stop_when_checks_pass = stop_when_checks_pass


def start_pipeline(
    *, session: Session, task: Task, pipeline: Pipeline, author: User, message_id: int
) -> Started:
    """Run the first step on ``message_id`` (a question, or an answer to hand on)."""
    if pipeline.workspace_id != task.workspace_id:
        raise NotFound("No such pipeline in this workspace.")
    first = pipeline.steps[0]
    message = session.get(Message, message_id)
    if message is None or message.task_id != task.id:
        raise NotFound("No such message in this task.")
    if message.role == "assistant" and first["instruction"]:
        started = hand_off(
            session=session, task=task, author=author, message_id=message_id,
            agent_id=first["agent_id"], instruction=first["instruction"],
        )  # fmt: skip
    else:
        started = rerun(
            session=session, task=task, author=author, message_id=message_id,
            agent_id=first["agent_id"],
        )  # fmt: skip
    for run in started.runs:
        run.pipeline_id, run.pipeline_round, run.pipeline_step = pipeline.id, 0, 0
        session.add(run)
    record_event(
        session=session, workspace_id=task.workspace_id, actor=author, verb="started",
        subject_type="pipeline", subject_id=pipeline.id, data={"task_id": task.id},
    )  # fmt: skip
    return started


def next_step(pipeline: Pipeline, round_: int, step: int) -> tuple[int, int] | None:
    """The (round, step) after this one, or None when the pipeline is complete."""
    if step + 1 < len(pipeline.steps):
        return (max(round_, 1), step + 1)
    if len(pipeline.steps) > 1 and round_ < pipeline.max_rounds:
        return (round_ + 1, 1)
    return None


def advance(*, run_id: int) -> list[int]:
    """After a pipeline run: create the next step's run; the ids to dispatch (none when done).

    Idempotent under duplicate delivery: the next step's run names the run it follows, under a
    unique constraint, so of two deliveries racing here one creates it and the other's insert
    fails and creates nothing."""
    try:
        return _advance(run_id)
    except IntegrityError:
        return []  # a duplicate delivery created the step first
    except OperationalError as exc:
        # SQLite: a write after a read whose snapshot another writer has since changed cannot
        # wait for the lock ("database is locked"); look again in a fresh transaction.
        if "locked" not in str(exc):
            raise
    try:
        return _advance(run_id)
    except IntegrityError:
        return []


def _advance(run_id: int) -> list[int]:
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is None or run.pipeline_id is None or run.status != RunStatus.succeeded:
            return []
        pipeline = session.get(Pipeline, run.pipeline_id)
        answer = session.get(Message, run.output_message_id) if run.output_message_id else None
        task = session.get(Task, run.task_id)
        if pipeline is None or answer is None or task is None:
            return []
        stop = pipeline.stop_word
        if stop and answer.content.lstrip().lower().startswith(stop.lower()):
            return []
        if (
            pipeline.run_checks
            and session.exec(select(Check.id).where(Check.test_message_id == answer.id)).first()
        ):
            return []  # the check's end carries the pipeline on (advance_after_check)
        return _hand_on(
            session, task, pipeline, answer, run.pipeline_round, run.pipeline_step, run_id
        )


def advance_after_check(*, check_id: int) -> list[int]:
    """After a pipeline's check: stop when it passed (if asked to), else hand its summary to
    the next step. The run ids to dispatch."""
    with session_scope() as session:
        check = session.get(Check, check_id)
        if check is None or check.pipeline_id is None or check.message_id is None:
            return []
        if check.status not in (CheckStatus.passed, CheckStatus.failed, CheckStatus.error):
            return []  # unavailable or cancelled: nothing a fixer could act on
        pipeline = session.get(Pipeline, check.pipeline_id)
        node = session.get(Message, check.message_id)
        task = session.get(Task, check.task_id)
        if pipeline is None or node is None or task is None:
            return []
        if check.status == CheckStatus.passed and pipeline.stop_when_checks_pass:
            return []
        return _hand_on(
            session, task, pipeline, node, check.pipeline_round, check.pipeline_step, None
        )


def _hand_on(
    session: Session,
    task: Task,
    pipeline: Pipeline,
    message: Message,
    round_: int | None,
    step: int | None,
    after_run_id: int | None,
) -> list[int]:
    following = next_step(pipeline, round_ or 0, step or 0)
    if following is None:
        return []
    # Idempotent under redelivery: a message is handed on at most once.
    if session.exec(
        select(Message.id).where(col(Message.parent_id) == message.id).limit(1)
    ).first():
        return []
    next_round, next_index = following
    spec = pipeline.steps[next_index]
    started = hand_off(
        session=session, task=task, author=None, message_id=message.id,  # type: ignore[arg-type]
        agent_id=spec["agent_id"], instruction=spec["instruction"], pipeline=pipeline,
        pipeline_round=next_round, pipeline_step=next_index,
    )  # fmt: skip
    # The step after a run names that run, under a unique constraint: of two deliveries racing
    # here one creates it and the other's insert fails (advance() then creates nothing).
    for created in started.runs:
        created.pipeline_after_run_id = after_run_id
        session.add(created)
    session.flush()
    return [r.id for r in started.runs if r.id is not None]
