"""Pipelines: a named sequence of hand-offs on one branch, repeated for up to N rounds.

A pipeline's first step answers the starting message; the steps after it form the loop body,
run ``max_rounds`` times (Coder → [Tester → Coder fixes] × N). A reply that starts with the
stop word (e.g. PASS) ends it early. Each step is an ordinary hand-off run, chained on Celery:
when one finishes, ``advance`` creates the next and returns it for the worker to send.

With ``run_checks``, a step whose answer holds tests is checked against the answer it was
handed (``app.engine.checks.auto_check``); the pipeline then waits for the check, and the next
step is handed the check's summary (``advance_after_check``), so the fixer sees what failed.
``stop_when_checks_pass`` ends the pipeline at the first check that passes.

One pipeline runs on a task at a time (``progress`` says where it stands); ``stop_pipeline``
cancels its active step and check and records the stop in the activity log, which ``advance``
honours, so a step that ends as it is stopped is not handed on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from app.db import session_scope
from app.engine.checks import cancel_check
from app.engine.runs import ACTIVE_STATUSES, Started, cancel, hand_off, rerun
from app.models import (
    CHECK_ACTIVE,
    Agent,
    Check,
    CheckStatus,
    Event,
    Message,
    Pipeline,
    Run,
    RunStatus,
    Task,
    User,
)
from app.models.common import utcnow
from app.services import Conflict, NotFound, ServiceError
from app.services.workspaces import record_event

MAX_STEPS = 6
# A page follows a pipeline's next step for this long after the step before it ended.
FOLLOW_WINDOW = timedelta(minutes=2)
# After a step ends, the worker hands on to the next one within moments; a pipeline counts as
# running across that gap for this long (so a lost hand-on does not look like a run for ever).
HAND_ON_GRACE = timedelta(seconds=30)


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
    now = progress(session=session, task=task)
    if now is not None and now.stopping:
        raise Conflict(f"The pipeline {now.pipeline.name!r} is stopping; start again once it has.")
    if now is not None and now.running:
        raise Conflict(
            f"The pipeline {now.pipeline.name!r} is running on this task; stop it first."
        )
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
    if following is None or stopped(session=session, task=task, pipeline_id=pipeline.id):
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


# Built once: a task page asks these on every view.
_CHECK_SHOWN_AS = select(Check).where(Check.message_id == sa.bindparam("message_id"))
_RUN_THAT_WROTE = select(Run).where(Run.output_message_id == sa.bindparam("message_id"))
_NEWEST_PIPELINE_RUN = (
    select(Run)
    .where(Run.task_id == sa.bindparam("task_id"), col(Run.pipeline_id).is_not(None))
    .order_by(col(Run.id).desc())
    .limit(1)
)


def continues_after(
    *, session: Session, message: Message, known: tuple[Check | None, Run | None] | None = None
) -> bool:
    """Whether a pipeline's next step is still to come right under ``message`` (a page showing
    it then looks for that step): a pipeline step's finished answer that is handed on, or a
    pipeline check's summary — a running check, or a finished one that does not stop it.
    ``known``: the check shown as ``message`` and the run that wrote it, when the caller has
    read them already."""
    now = utcnow()
    if known is None:
        check = session.exec(_CHECK_SHOWN_AS, params={"message_id": message.id}).first()
    else:
        check, run = known
    if check is not None:
        pipeline = session.get(Pipeline, check.pipeline_id) if check.pipeline_id else None
        if pipeline is None:
            return False
        if check.status in CHECK_ACTIVE:
            return True
        if check.status not in (CheckStatus.passed, CheckStatus.failed, CheckStatus.error):
            return False
        if check.status == CheckStatus.passed and pipeline.stop_when_checks_pass:
            return False
        if check.finished_at is None or now - check.finished_at > FOLLOW_WINDOW:
            return False
        return next_step(pipeline, check.pipeline_round or 0, check.pipeline_step or 0) is not None
    if known is None:
        run = session.exec(_RUN_THAT_WROTE, params={"message_id": message.id}).first()
    if run is None or run.pipeline_id is None or run.status != RunStatus.succeeded:
        return False
    pipeline = session.get(Pipeline, run.pipeline_id)
    if pipeline is None or run.finished_at is None or now - run.finished_at > FOLLOW_WINDOW:
        return False
    stop = pipeline.stop_word
    if stop and message.content.lstrip().lower().startswith(stop.lower()):
        return False
    if (
        pipeline.run_checks
        and session.exec(select(Check.id).where(Check.test_message_id == message.id)).first()
    ):
        return False  # its check is shown under it, and that check carries the pipeline on
    return next_step(pipeline, run.pipeline_round or 0, run.pipeline_step or 0) is not None


def stopped(*, session: Session, task: Task, pipeline_id: int | None) -> bool:
    """Whether the pipeline was stopped on this task since it was last started (its
    activity log says so: durable, and no schema of its own)."""
    events = session.exec(
        select(Event)
        .where(
            Event.workspace_id == task.workspace_id,
            Event.subject_type == "pipeline",
            Event.subject_id == pipeline_id,
            col(Event.verb).in_(("started", "stopped")),
        )
        .order_by(col(Event.id).desc())
        .limit(500)
    ).all()
    latest = next((e for e in events if (e.data or {}).get("task_id") == task.id), None)
    return latest is not None and latest.verb == "stopped"


@dataclass(frozen=True)
class Progress:
    """Where the newest pipeline of a task stands: its newest step and whether it goes on."""

    pipeline: Pipeline
    run: Run
    agent_name: str
    running: bool
    stopped: bool

    @property
    def stopping(self) -> bool:
        """Stopped, and its step not ended yet (a running step stops at its next token)."""
        return self.stopped and self.run.status in ACTIVE_STATUSES

    @property
    def live(self) -> bool:
        return self.running or self.stopping

    @property
    def round(self) -> int:
        return max(self.run.pipeline_round or 0, 1)

    @property
    def step(self) -> int:
        return (self.run.pipeline_step or 0) + 1


def progress(*, session: Session, task: Task) -> Progress | None:
    """The task's newest pipeline step and whether the pipeline is running (a step or its
    check is active, or one just ended and the next is due), or None when none ever ran."""
    run = session.exec(_NEWEST_PIPELINE_RUN, params={"task_id": task.id}).first()
    pipeline = session.get(Pipeline, run.pipeline_id) if run and run.pipeline_id else None
    if run is None or pipeline is None:
        return None
    agent = session.get(Agent, run.agent_id) if run.agent_id else None
    halted = stopped(session=session, task=task, pipeline_id=pipeline.id)
    running = not halted and (run.status in ACTIVE_STATUSES or _goes_on(session, pipeline, run))
    return Progress(pipeline, run, agent.name if agent else "a deleted agent", running, halted)


def _goes_on(session: Session, pipeline: Pipeline, run: Run) -> bool:
    """After a step that ended: whether its check runs or the next step is about to start."""
    if run.status != RunStatus.succeeded or run.output_message_id is None:
        return False
    if next_step(pipeline, run.pipeline_round or 0, run.pipeline_step or 0) is None:
        return False
    answer = session.get(Message, run.output_message_id)
    stop = pipeline.stop_word
    if answer is None or (stop and answer.content.lstrip().lower().startswith(stop.lower())):
        return False
    check = session.exec(
        select(Check).where(Check.test_message_id == answer.id, Check.pipeline_id == pipeline.id)
    ).first()
    ended = run.finished_at
    if check is not None:
        if check.status in CHECK_ACTIVE:
            return True
        if check.status == CheckStatus.passed and pipeline.stop_when_checks_pass:
            return False
        ended = check.finished_at
    return ended is not None and utcnow() - ended < HAND_ON_GRACE


def stop_pipeline(*, session: Session, task: Task, actor: User) -> list[Run]:
    """Stop the task's running pipeline: nothing more is handed on, and its active steps and
    checks are cancelled. The cancelled runs (the caller announces them once committed)."""
    now = progress(session=session, task=task)
    if now is None or not now.running:
        raise Conflict("No pipeline is running on this task.")
    record_event(
        session=session, workspace_id=task.workspace_id, actor=actor, verb="stopped",
        subject_type="pipeline", subject_id=now.pipeline.id, data={"task_id": task.id},
    )  # fmt: skip
    cancelled = []
    for run in session.exec(
        select(Run).where(
            Run.task_id == task.id,
            Run.pipeline_id == now.pipeline.id,
            col(Run.status).in_(ACTIVE_STATUSES),
        )
    ).all():
        try:
            cancelled.append(cancel(session=session, run=run, actor=actor))
        except Conflict:
            continue  # it ended meanwhile
    for check in session.exec(
        select(Check).where(
            Check.task_id == task.id,
            Check.pipeline_id == now.pipeline.id,
            col(Check.status).in_(CHECK_ACTIVE),
        )
    ).all():
        cancel_check(session=session, check=check, actor=actor)
    return cancelled
