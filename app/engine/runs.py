"""The operations of the run engine: ask, fan out, fork, rerun, reassign, hand off, cancel,
retry, pipelines. Each creates messages and runs in the caller's transaction; the caller
commits and only then sends the runs to the queue (``app.engine.dispatch``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, col, func, select

from app.engine import delivery
from app.models import (
    CHECK_ACTIVE,
    Agent,
    Check,
    Message,
    MessageRole,
    Model,
    ModelEndpoint,
    Pipeline,
    Run,
    RunStatus,
    Task,
    TaskStatus,
    User,
)
from app.models.common import utcnow
from app.services import Conflict, NotFound, ServiceError
from app.services.workspaces import record_event

MAX_FANOUT = 8
MAX_MESSAGE_CHARS = 100_000
ACTIVE_STATUSES = (RunStatus.queued, RunStatus.running)


_ENQUEUED = "switchboard.enqueued_runs"


def enqueue(session: Session, run: Run) -> None:
    """Queue ``run`` in the caller's transaction: its ``queued_at`` is the moment that
    transaction commits — when the run enters the queue and a worker may take it — not when
    the request began building it (a fan-out's messages and events come first).

    Its ``dispatched_at`` is that moment too: the caller sends it right after the commit
    (``app.engine.dispatch``), which clears the stamp should the broker refuse it. So sending
    writes nothing when it succeeds — a write then would take SQLite's lock just as the worker
    claims the run. Were the process to die between the commit and the send, the run is sent
    again like a lost message, once the broker would have redelivered it."""
    session.info.setdefault(_ENQUEUED, []).append(run)
    session.add(run)


@event.listens_for(Session, "before_commit")
def _stamp_enqueued(session: Session) -> None:
    runs = session.info.pop(_ENQUEUED, [])
    now = utcnow()
    for run in runs:
        if run.status == RunStatus.queued:
            run.queued_at = run.dispatched_at = now  # flushed by the commit


@event.listens_for(Session, "after_rollback")
def _forget_enqueued(session: Session) -> None:
    session.info.pop(_ENQUEUED, None)


@dataclass(frozen=True)
class Started:
    """What an operation created: the new user message (if any) and the runs to dispatch."""

    message: Message | None
    runs: list[Run]


def _clean_content(content: str) -> str:
    content = content.strip()
    if not content:
        raise ServiceError("Write a message first.")
    if len(content) > MAX_MESSAGE_CHARS:
        raise ServiceError(f"Keep a message under {MAX_MESSAGE_CHARS:,} characters.")
    return content


def _agents(session: Session, task: Task, agent_ids: list[int]) -> list[Agent]:
    """The agents, in the order given; each must belong to the task's workspace and have a model."""
    if not agent_ids:
        raise ServiceError("Choose at least one agent.")
    if len(agent_ids) > MAX_FANOUT:
        raise ServiceError(f"Fan out to at most {MAX_FANOUT} agents at once.")
    if len(set(agent_ids)) != len(agent_ids):
        raise ServiceError("Each agent can be chosen once per fan-out.")
    found = {
        agent.id: agent
        for agent in session.exec(
            select(Agent).where(
                col(Agent.id).in_(agent_ids), Agent.workspace_id == task.workspace_id
            )
        ).all()
    }
    missing = [agent_id for agent_id in agent_ids if agent_id not in found]
    if missing:
        raise NotFound(f"No such agent in this workspace: {missing[0]}.")
    agents = [found[agent_id] for agent_id in agent_ids]
    for agent in agents:
        usable_model(session, agent)
    return agents


def usable_model(session: Session, agent: Agent) -> Model:
    model = session.get(Model, agent.model_id) if agent.model_id else None
    if model is None:
        raise ServiceError(f"{agent.name} has no model; choose one on the Agents page.")
    endpoint = session.get(ModelEndpoint, model.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise ServiceError(f"The model server of {agent.name} is disabled.")
    return model


def _task_message(session: Session, task: Task, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None or message.task_id != task.id:
        raise NotFound("No such message in this task.")
    return message


def _refuse_reply_to_unfinished(session: Session, parent: Message | None) -> None:
    """A reply under an answer still being written would send the model an empty turn."""
    if parent is None or parent.role != MessageRole.assistant:
        return
    run = session.exec(
        select(Run).where(Run.output_message_id == parent.id, col(Run.status).in_(ACTIVE_STATUSES))
    ).first()
    if run is None:
        return
    agent = session.get(Agent, run.agent_id) if run.agent_id else None
    name = agent.name if agent else "the agent"
    raise Conflict(f"Wait for {name} to finish, or stop it, before replying to this answer.")


def _add_message(
    session: Session,
    task: Task,
    *,
    parent: Message | None,
    role: MessageRole,
    content: str = "",
    author: User | None = None,
    agent: Agent | None = None,
    edited_from: Message | None = None,
) -> Message:
    message = Message(
        task_id=task.id,  # type: ignore[arg-type]
        parent_id=parent.id if parent else None,
        role=role,
        content=content,
        author_user_id=author.id if author else None,
        agent_id=agent.id if agent else None,
        edited_from_id=edited_from.id if edited_from else None,
    )
    session.add(message)
    session.flush()
    return message


def _start_runs(
    session: Session,
    task: Task,
    *,
    question: Message,
    agents: list[Agent],
    author: User | None,
    pipeline: Pipeline | None = None,
    pipeline_round: int | None = None,
    pipeline_step: int | None = None,
) -> list[Run]:
    """One queued run per agent answering ``question``, each with its (empty) answer message."""
    group = str(uuid.uuid4()) if len(agents) > 1 else None
    runs = []
    for agent in agents:
        model = usable_model(session, agent)
        answer = _add_message(
            session, task, parent=question, role=MessageRole.assistant, agent=agent
        )
        run = Run(
            task_id=task.id,  # type: ignore[arg-type]
            agent_id=agent.id,
            model_id=model.id,
            input_message_id=question.id,  # type: ignore[arg-type]
            output_message_id=answer.id,
            fanout_group=group,
            pipeline_id=pipeline.id if pipeline else None,
            pipeline_round=pipeline_round,
            pipeline_step=pipeline_step,
            created_by_id=author.id if author else None,
        )
        enqueue(session, run)
        runs.append(run)
    session.flush()
    if task.status == TaskStatus.backlog:
        task.status = TaskStatus.running
    task.updated_at = utcnow()
    session.add(task)
    for run in runs:
        record_event(
            session=session,
            workspace_id=task.workspace_id,
            actor=author,
            verb="queued",
            subject_type="run",
            subject_id=run.id,
            data={"task_id": task.id, "agent_id": run.agent_id},
        )
    return runs


def default_agent_ids(task: Task, agent_ids: list[int] | None) -> list[int]:
    if agent_ids:
        return agent_ids
    if task.assignee_agent_id is None:
        raise ServiceError("Choose an agent, or assign the task to one.")
    return [task.assignee_agent_id]


def ask(
    *,
    session: Session,
    task: Task,
    author: User,
    content: str,
    parent_id: int | None = None,
    agent_ids: list[int] | None = None,
) -> Started:
    """Add a user message (under ``parent_id``, or as the task's first message) and have one
    agent answer it, or fan it out to several: each answer starts a sibling branch."""
    content = _clean_content(content)
    parent = _task_message(session, task, parent_id) if parent_id is not None else None
    if (
        parent is None
        and session.exec(
            select(Message.id).where(Message.task_id == task.id, col(Message.parent_id).is_(None))
        ).first()
    ):
        raise ServiceError("This task has a first message already; reply under a message.")
    _refuse_reply_to_unfinished(session, parent)
    agents = _agents(session, task, default_agent_ids(task, agent_ids))
    question = _add_message(session, task, parent=parent, role=MessageRole.user,
                            content=content, author=author)  # fmt: skip
    return Started(question, _start_runs(session, task, question=question, agents=agents,
                                         author=author))  # fmt: skip


def ask_apart(
    *, session: Session, task: Task, author: User | None, content: str, agent_id: int
) -> Started:
    """A question in a thread of its own (a new root of the task's tree) answered by one agent:
    its context is that question alone — for work about the task, such as judging answers."""
    content = _clean_content(content)
    agents = _agents(session, task, [agent_id])
    question = _add_message(session, task, parent=None, role=MessageRole.user,
                            content=content, author=author)  # fmt: skip
    return Started(question, _start_runs(session, task, question=question, agents=agents,
                                         author=author))  # fmt: skip


def fork_with_edit(
    *,
    session: Session,
    task: Task,
    author: User,
    message_id: int,
    content: str,
    agent_ids: list[int] | None = None,
) -> Started:
    """An edited copy of a user message, as its sibling, answered anew; the original stays."""
    original = _task_message(session, task, message_id)
    if original.role != MessageRole.user:
        raise ServiceError("Only your own kind of message (a user message) can be edited.")
    content = _clean_content(content)
    parent = session.get(Message, original.parent_id) if original.parent_id else None
    _refuse_reply_to_unfinished(session, parent)
    agents = _agents(session, task, default_agent_ids(task, agent_ids))
    question = _add_message(
        session, task, parent=parent, role=MessageRole.user, content=content, author=author,
        edited_from=original,
    )  # fmt: skip
    return Started(question, _start_runs(session, task, question=question, agents=agents,
                                         author=author))  # fmt: skip


def rerun(
    *, session: Session, task: Task, author: User, message_id: int, agent_id: int | None = None
) -> Started:
    """Answer the same question again — with the same agent or another — as a new sibling."""
    answer = _task_message(session, task, message_id)
    if answer.role == MessageRole.assistant:
        if answer.parent_id is None:
            raise ServiceError("This answer has no question to answer again.")
        question = _task_message(session, task, answer.parent_id)
        chosen = agent_id or answer.agent_id
    else:
        question, chosen = answer, agent_id or task.assignee_agent_id
    if chosen is None:
        raise ServiceError("Choose an agent to answer.")
    agents = _agents(session, task, [chosen])
    return Started(None, _start_runs(session, task, question=question, agents=agents,
                                     author=author))  # fmt: skip


def reassign(*, session: Session, task: Task, actor: User, agent_id: int | None) -> Task:
    """Make ``agent_id`` the task's default agent for its next runs (None: unassigned)."""
    if agent_id is not None:
        agent = session.get(Agent, agent_id)
        if agent is None or agent.workspace_id != task.workspace_id:
            raise NotFound("No such agent in this workspace.")
    task.assignee_agent_id = agent_id
    task.updated_at = utcnow()
    session.add(task)
    record_event(
        session=session, workspace_id=task.workspace_id, actor=actor, verb="reassigned",
        subject_type="task", subject_id=task.id, data={"agent_id": agent_id},
    )  # fmt: skip
    return task


def hand_off(
    *,
    session: Session,
    task: Task,
    author: User | None,
    message_id: int,
    agent_id: int,
    instruction: str,
    pipeline: Pipeline | None = None,
    pipeline_round: int | None = None,
    pipeline_step: int | None = None,
) -> Started:
    """Send an agent's answer on to another agent with an instruction ("test this"): the
    instruction becomes the next message of that branch and the agent answers it."""
    answer = _task_message(session, task, message_id)
    check = session.exec(select(Check).where(Check.message_id == answer.id)).first()
    if check is not None:  # a check's summary: handed on once the check is over
        if check.status in CHECK_ACTIVE:
            raise ServiceError("Wait until the check is finished before handing it off.")
    elif answer.role != MessageRole.assistant:
        raise ServiceError("Hand off an agent's answer, not a user message.")
    elif not _run_of(session, answer.id, RunStatus.succeeded):  # type: ignore[arg-type]
        raise ServiceError("Wait until the answer is finished before handing it off.")
    agents = _agents(session, task, [agent_id])
    instruction_message = _add_message(
        session, task, parent=answer, role=MessageRole.user,
        content=_clean_content(instruction), author=author,
    )  # fmt: skip
    instruction_message.handoff = True
    session.add(instruction_message)
    runs = _start_runs(
        session, task, question=instruction_message, agents=agents, author=author,
        pipeline=pipeline, pipeline_round=pipeline_round, pipeline_step=pipeline_step,
    )  # fmt: skip
    return Started(instruction_message, runs)


def _run_of(
    session: Session, output_message_id: int, status: RunStatus | None = None
) -> Run | None:
    query = select(Run).where(Run.output_message_id == output_message_id)
    if status is not None:
        query = query.where(Run.status == status)
    return session.exec(query).first()


def cancel(*, session: Session, run: Run, actor: User) -> Run:
    """Cancel a queued run at once; a running one stops at its next token (the worker does it,
    keeping the partial text). Returns the run; the caller raises the worker's flag.

    Both are conditional UPDATEs, so a worker's ``begin`` racing this cannot be overwritten:
    a run that began meanwhile gets the durable request its worker looks for instead."""
    now = utcnow()
    delivery.cancel(
        session, Run, run.id, noun="run",  # type: ignore[arg-type]
        queued={"status": RunStatus.cancelled, "finished_at": now,
                "error": "Cancelled before it started.", "lease_until": None},
        running={"cancel_requested_at": sa.func.coalesce(Run.cancel_requested_at, now)},
    )  # fmt: skip
    # The caller's object (the same one, when it was read in this session) shows the outcome.
    run = session.get(Run, run.id, populate_existing=True) or run
    delivery.record(session, task_id=run.task_id, actor=actor, verb="cancelled",
                    subject_type="run", subject_id=run.id)  # fmt: skip
    return run


def retry(*, session: Session, run: Run, actor: User) -> Run:
    """Queue a failed or cancelled run again: same question, same answer message, fresh start,
    on the agent's model as it is now (the one the run used may have been deleted or replaced:
    a run without a model would wait in the queue for ever)."""
    if run.status not in (RunStatus.failed, RunStatus.cancelled):
        raise Conflict("Only a failed or cancelled run can be retried.")
    agent = session.get(Agent, run.agent_id) if run.agent_id else None
    if agent is None:
        raise ServiceError("The run's agent was deleted; rerun the question with another agent.")
    run.model_id = usable_model(session, agent).id
    run.status = RunStatus.queued
    run.error = None
    run.attempts = 0
    run.started_at = run.first_token_at = run.finished_at = None
    run.dispatched_at = run.lease_until = None
    run.claimed_by = None
    run.prompt_tokens = run.completion_tokens = None
    run.tokens_per_second = None
    enqueue(session, run)
    if run.output_message_id is not None:
        session.execute(
            sa.update(Message).where(col(Message.id) == run.output_message_id).values(content="")
        )
    task = session.get(Task, run.task_id)
    assert task is not None
    record_event(
        session=session, workspace_id=task.workspace_id, actor=actor, verb="retried",
        subject_type="run", subject_id=run.id, data={"task_id": task.id},
    )  # fmt: skip
    return run


def queue_position(*, session: Session, run: Run) -> int | None:
    """1 for the next run its model server will take, 2 after that, …; None unless queued."""
    if run.status != RunStatus.queued or run.model_id is None:
        return None
    model = session.get(Model, run.model_id)
    if model is None:
        return None
    ahead = session.exec(
        select(func.count())
        .select_from(Run)
        .join(Model, col(Model.id) == col(Run.model_id))
        .where(
            Model.endpoint_id == model.endpoint_id,
            Run.status == RunStatus.queued,
            sa.or_(
                col(Run.queued_at) < run.queued_at,
                sa.and_(col(Run.queued_at) == run.queued_at, col(Run.id) < run.id),
            ),
        )
    ).one()
    return int(ahead) + 1
