"""Carrying out one run on a worker: claim it, stream the model, publish, finish — once.

Delivery is at-least-once (late acks, requeue on worker loss), so everything here is
idempotent. A run is *claimed* by one conditional UPDATE that takes it when it is queued, or
running under a lease that has run out (its worker died). It stays queued — with its queue
position, cancellable at once — while its worker waits for a slot of its model server; it
*begins* (running, one more attempt) only with a slot. A run whose worker has died
``MAX_ATTEMPTS`` times ends failed instead of looping. The answer message exists from the start
(one per run, by a unique constraint); the final write fills it in only while this worker still
holds the claim.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.config import Settings
from app.db import session_scope
from app.engine import live
from app.engine.conversation import message_path, render_context, render_transcript
from app.engine.loop_guard import LoopGuard
from app.llm import Finish, ModelError, TextDelta, Timeouts, stream_chat, stream_completion
from app.models import Agent, Message, Model, ModelEndpoint, Run, RunStatus, Task
from app.models.common import utcnow
from app.services.workspaces import record_event

log = logging.getLogger(__name__)
# One line per finished run, shown even on a quiet console (app/runtime/console.py).
runs_log = logging.getLogger("switchboard.runs")

MAX_ATTEMPTS = 3
FLUSH_INTERVAL_S = 0.05
SLOT_WAIT_S = 20.0
SLOT_POLL_S = 0.1
SLOT_CHECK_S = 1.0  # how often a run waiting for a slot looks whether it was cancelled


class Requeue(Exception):
    """The model server is at its concurrency limit: put the run back in its queue."""


class CannotRun(Exception):
    """The run's agent, model or server is gone; the message says which."""


@dataclass(frozen=True)
class Job:
    """Everything a run needs, read in one short transaction at claim time."""

    run_id: int
    task_id: int
    workspace_id: int
    attempt: int
    output_message_id: int
    endpoint_id: int
    base_url: str
    api_key: str | None
    server_kind: str
    max_concurrency: int
    model: str
    messages: list[dict[str, str]]
    trimmed: bool
    max_tokens: int
    temperature: float
    # A base model ("transcript" format) gets one completion prompt instead of messages.
    prompt: str | None = None
    stop: tuple[str, ...] = ()
    loop_guard: bool = True


LOOP_STOPPED = "stopped: the model was repeating itself"


def run_lease(settings: Settings) -> timedelta:
    """How long a claim holds. Past the hard time limit (the delivery is surely over by then),
    and short of the broker's visibility timeout: when a worker dies, Redis hands its run out
    again after that timeout, and that delivery must find the lease run out, or it is dropped
    and the run waits for the sweeper."""
    limit, visibility = settings.run_time_limit, settings.broker_visibility_timeout
    return timedelta(seconds=min(limit + 30, (limit + visibility) / 2))


def claim(*, session: Session, run_id: int, worker: str, lease: timedelta) -> int | None:
    """Take the run for this worker, still queued; its attempts so far, or None when it is not
    ours to run. The lease covers the whole delivery (the time limit counts from its start)."""
    now = utcnow()
    attempts = session.execute(
        sa.update(Run)
        .where(
            col(Run.id) == run_id,
            sa.or_(
                sa.and_(
                    col(Run.status) == RunStatus.queued,
                    sa.or_(col(Run.lease_until).is_(None), col(Run.lease_until) < now),
                ),
                sa.and_(col(Run.status) == RunStatus.running, col(Run.lease_until) < now),
            ),
        )
        .values(status=RunStatus.queued, claimed_by=worker, lease_until=now + lease)
        .returning(col(Run.attempts))
    ).scalar_one_or_none()
    return int(attempts) if attempts is not None else None


def begin(*, session: Session, run_id: int, worker: str) -> bool:
    """Start the claimed run (it holds a slot now): running, one more attempt. False when it
    was cancelled while it waited."""
    now = utcnow()
    return bool(
        session.execute(  # type: ignore[attr-defined]
            sa.update(Run)
            .where(
                col(Run.id) == run_id,
                col(Run.claimed_by) == worker,
                col(Run.status) == RunStatus.queued,
            )
            .values(
                status=RunStatus.running,
                attempts=Run.attempts + 1,  # type: ignore[operator]
                started_at=sa.func.coalesce(Run.started_at, now),
            )
        ).rowcount
    )


def still_claimed(*, run_id: int, worker: str) -> bool:
    """Whether the run still waits with this worker (not cancelled meanwhile)."""
    with session_scope() as session:
        found = session.exec(
            select(Run.id).where(
                Run.id == run_id, Run.claimed_by == worker, Run.status == RunStatus.queued
            )
        ).first()
    return found is not None


def prepare(*, session: Session, run_id: int, attempt: int) -> Job:
    run = session.get(Run, run_id)
    assert run is not None and run.output_message_id is not None
    task = session.get(Task, run.task_id)
    agent = session.get(Agent, run.agent_id) if run.agent_id else None
    model = session.get(Model, run.model_id) if run.model_id else None
    endpoint = session.get(ModelEndpoint, model.endpoint_id) if model else None
    if task is None or agent is None:
        raise CannotRun("The agent of this run was deleted.")
    if model is None or endpoint is None:
        raise CannotRun("The model of this run's agent was removed from its server.")
    if not endpoint.enabled:
        raise CannotRun(f"The model server {endpoint.name!r} is disabled.")
    path = message_path(session=session, message_id=run.input_message_id)
    context = render_context(
        agent=agent, path=path, context_length=model.context_length, reply_tokens=agent.max_tokens
    )
    transcript = None
    if model.effective_prompt_format == "transcript":
        transcript = render_transcript(
            agent=agent, path=path, context_length=model.context_length,
            reply_tokens=agent.max_tokens,
        )  # fmt: skip
    return Job(
        run_id=run_id,
        task_id=task.id,  # type: ignore[arg-type]
        workspace_id=task.workspace_id,
        attempt=attempt,
        output_message_id=run.output_message_id,
        endpoint_id=endpoint.id,  # type: ignore[arg-type]
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        server_kind=endpoint.server_kind,
        max_concurrency=endpoint.max_concurrency,
        model=model.name,
        messages=context.messages,
        trimmed=transcript.trimmed if transcript else context.trimmed,
        max_tokens=agent.max_tokens,
        temperature=agent.temperature,
        prompt=transcript.prompt if transcript else None,
        stop=transcript.stop if transcript else (),
        loop_guard=agent.loop_guard,
    )


# --- the endpoint's concurrency limit, across every worker ----------------------------------

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
return 0
"""
SLOT_LEASE_S = 60.0
SLOT_REFRESH_S = 20.0


def _slots_key(endpoint_id: int) -> str:
    return f"sb:endpoint:{endpoint_id}:slots"


def take_slot(client: redis.Redis, job: Job) -> bool:
    """One of the endpoint's ``max_concurrency`` slots, held under a lease that lapses if the
    worker dies (so a killed worker never keeps a slot)."""
    now = time.time()
    taken = client.eval(  # type: ignore[no-untyped-call]
        _ACQUIRE, 1, _slots_key(job.endpoint_id), now, now + SLOT_LEASE_S, job.run_id,
        job.max_concurrency,
    )  # fmt: skip
    return bool(taken)


def release_slot(client: redis.Redis, job: Job) -> None:
    client.zrem(_slots_key(job.endpoint_id), job.run_id)


# --- publishing ----------------------------------------------------------------------------


class Publisher:
    """Appends a run's tokens to its Redis stream, coalesced every ~50 ms.

    Redis going away must not fail the run: publishing stops, the model keeps streaming, and
    the text still reaches SQL (viewers then read it from there). Redis coming back empty (a
    restart without persistence) must not leave a stream that holds only the tail of the text:
    the stream starts over with a ``reset`` and the whole text so far.
    """

    def __init__(self, client: redis.Redis, job: Job) -> None:
        self.client = client
        self.job = job
        self.pending: list[str] = []
        self.published: list[str] = []
        self.last_flush = time.monotonic()
        self.last_slot_refresh = time.monotonic()
        self.healthy = True

    def _send(self, type_: str, data: dict[str, Any]) -> None:
        if not self.healthy:
            return
        run_id = self.job.run_id
        try:
            if not self.client.exists(live.run_stream(run_id)):  # lost: start it over
                live.append_run(self.client, run_id, "reset", {"attempt": self.job.attempt})
                if self.published:
                    live.append_run(self.client, run_id, "token", {"text": "".join(self.published)})
            live.append_run(self.client, run_id, type_, data)
        except redis.RedisError as exc:
            self.healthy = False
            log.warning("run %s: live stream unavailable, continuing: %s", run_id, exc)
            return
        if type_ == "token":
            self.published.append(data["text"])

    def event(self, type_: str, data: dict[str, Any]) -> None:
        self.flush()
        self._send(type_, data)

    def token(self, text: str) -> bool:
        """Buffer ``text``; True when a flush happened (a good moment to look for a cancel)."""
        self.pending.append(text)
        # The first token goes out at once (it is the time to first token people see); later
        # ones are coalesced every ~50 ms.
        if not self.published or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        if self.pending:
            self._send("token", {"text": "".join(self.pending)})
            self.pending.clear()
        self.last_flush = time.monotonic()
        if self.healthy and self.last_flush - self.last_slot_refresh > SLOT_REFRESH_S:
            self.last_slot_refresh = self.last_flush
            _try_slot(self.client, self.job)  # renews the lease on the slot this run holds

    def cancel_requested(self) -> bool:
        if not self.healthy:
            return False
        try:
            return live.cancel_requested(self.client, self.job.run_id)
        except redis.RedisError:
            return False

    def workspace(self, type_: str, data: dict[str, Any]) -> None:
        if not self.healthy:
            return
        try:
            live.append_workspace(self.client, self.job.workspace_id, type_, data)
        except redis.RedisError:
            self.healthy = False


# --- one attempt ---------------------------------------------------------------------------


@dataclass
class Outcome:
    status: RunStatus
    text: str
    error: str | None = None
    first_token_at: Any = None
    finished_at: Any = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None


def stream_answer(job: Job, settings: Settings, publisher: Publisher) -> Outcome:
    """Stream the model's answer; stop early on cancel; never raise for a model failure."""
    timeouts = Timeouts(
        connect=settings.model_connect_timeout,
        first_token=settings.model_first_token_timeout,
        between_tokens=settings.model_between_tokens_timeout,
    )
    # llama-server keeps each slot's prompt cache; byte-stable contexts then reuse it on forks
    # and reruns, and the server sends a request to the slot with the longest shared prefix.
    extra = {"cache_prompt": True} if job.server_kind == "llama.cpp" else None
    parts: list[str] = []
    first_token_at = None
    first_token_clock = 0.0
    finish: Finish | None = None
    status = RunStatus.succeeded
    error = None
    guard = LoopGuard() if job.loop_guard else None
    events = _model_stream(job, timeouts, extra)
    try:
        for event in events:
            if isinstance(event, Finish):
                finish = event
                continue
            text = event.text
            if job.prompt is not None and not parts:  # the reply to "Assistant:" starts " …"
                text = text.lstrip()
                if not text:
                    continue
            if first_token_at is None:
                first_token_at, first_token_clock = utcnow(), time.monotonic()
            parts.append(text)
            if guard is not None and guard.feed(text):
                status, error = RunStatus.succeeded, LOOP_STOPPED
                # The stored answer is the text before the loop; the done event that follows
                # makes viewers render it from SQL.
                parts = [guard.kept]
                break
            if publisher.token(text) and publisher.cancel_requested():
                status = RunStatus.cancelled
                error = "Cancelled; the text so far is kept."
                break
    except ModelError as exc:
        status, error = RunStatus.failed, exc.message
    finally:
        events.close()  # closes the connection: the server frees the slot at once
    publisher.flush()
    ended = time.monotonic()
    outcome = Outcome(status, "".join(parts), error, first_token_at, utcnow())
    if finish is not None:
        outcome.prompt_tokens = finish.prompt_tokens
        outcome.completion_tokens = finish.completion_tokens
        decode_s = ended - first_token_clock
        if finish.completion_tokens and finish.completion_tokens > 1 and decode_s > 0:
            outcome.tokens_per_second = round((finish.completion_tokens - 1) / decode_s, 2)
    return outcome


def _model_stream(
    job: Job, timeouts: Timeouts, extra: dict[str, Any] | None
) -> Generator[TextDelta | Finish, None, None]:
    """A chat stream, or for a transcript-format model a completion of its prompt."""
    if job.prompt is not None:
        return stream_completion(
            base_url=job.base_url, api_key=job.api_key, model=job.model, prompt=job.prompt,
            stop=job.stop, max_tokens=job.max_tokens, temperature=job.temperature,
            timeouts=timeouts, extra=extra,
        )  # fmt: skip
    return stream_chat(
        base_url=job.base_url, api_key=job.api_key, model=job.model, messages=job.messages,
        max_tokens=job.max_tokens, temperature=job.temperature, timeouts=timeouts, extra=extra,
    )  # fmt: skip


def record_outcome(*, session: Session, job: Job, worker: str, outcome: Outcome) -> bool:
    """Write the answer and figures, only while this worker holds the claim. Idempotent."""
    written = session.execute(  # type: ignore[attr-defined]
        sa.update(Run)
        .where(
            col(Run.id) == job.run_id,
            col(Run.claimed_by) == worker,
            col(Run.status) == RunStatus.running,
        )
        .values(
            status=outcome.status,
            error=outcome.error,
            first_token_at=outcome.first_token_at,
            finished_at=outcome.finished_at or utcnow(),
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            tokens_per_second=outcome.tokens_per_second,
            context_trimmed=job.trimmed,
            lease_until=None,
        )
    ).rowcount
    if not written:
        return False
    session.execute(
        sa.update(Message)
        .where(col(Message.id) == job.output_message_id)
        .values(content=outcome.text)
    )
    record_event(
        session=session, workspace_id=job.workspace_id, actor=None, verb=str(outcome.status),
        subject_type="run", subject_id=job.run_id, data={"task_id": job.task_id},
    )  # fmt: skip
    settle_task(session=session, task_id=job.task_id)
    return True


def settle_task(*, session: Session, task_id: int) -> None:
    """A running task with nothing left running goes to review."""
    active = session.exec(
        select(Run.id).where(
            Run.task_id == task_id, col(Run.status).in_([RunStatus.queued, RunStatus.running])
        )
    ).first()
    task = session.get(Task, task_id)
    if active is None and task is not None and task.status == "running":
        task.status = "review"
        task.updated_at = utcnow()
        session.add(task)


def fail(*, run_id: int, reason: str, client: redis.Redis | None) -> None:
    """End a run failed, whatever state it is in unless already finished (sweeper, poison)."""
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is None or run.status not in (RunStatus.queued, RunStatus.running):
            return
        run.status = RunStatus.failed
        run.error = reason
        run.finished_at = utcnow()
        run.lease_until = None
        session.add(run)
        task = session.get(Task, run.task_id)
        assert task is not None
        record_event(
            session=session, workspace_id=task.workspace_id, actor=None, verb="failed",
            subject_type="run", subject_id=run_id, data={"task_id": task.id},
        )  # fmt: skip
        session.flush()
        settle_task(session=session, task_id=task.id)  # type: ignore[arg-type]
        workspace_id = task.workspace_id
    if client is not None:
        with contextlib.suppress(redis.RedisError):
            live.append_run(client, run_id, "error", {"status": "failed", "error": reason})
            live.append_workspace(client, workspace_id, "run", {"id": run_id, "status": "failed"})


def release_claim(*, run_id: int, worker: str) -> None:
    """Give a claimed run back to the queue before it began (no slot was free)."""
    with session_scope() as session:
        session.execute(
            sa.update(Run)
            .where(
                col(Run.id) == run_id,
                col(Run.claimed_by) == worker,
                col(Run.status) == RunStatus.queued,
            )
            .values(claimed_by=None, lease_until=None)
        )


def execute_run(*, run_id: int, worker: str, settings: Settings, client: redis.Redis) -> None:
    """Carry out one delivery of a run. Raises Requeue when its server has no free slot."""
    with session_scope() as session:
        attempts = claim(session=session, run_id=run_id, worker=worker, lease=run_lease(settings))
    if attempts is None:
        log.info("run %s: not claimable (finished, cancelled, or held by a live worker)", run_id)
        return
    if attempts >= MAX_ATTEMPTS:  # each of them began and none finished: its worker died
        fail(
            run_id=run_id,
            reason=f"Its worker died {MAX_ATTEMPTS} times while running it; giving up.",
            client=client,
        )
        return
    attempt = attempts + 1
    try:
        with session_scope() as session:
            job = prepare(session=session, run_id=run_id, attempt=attempt)
    except CannotRun as exc:
        fail(run_id=run_id, reason=str(exc), client=client)
        return
    publisher = Publisher(client, job)
    deadline = time.monotonic() + SLOT_WAIT_S
    next_check = time.monotonic() + SLOT_CHECK_S
    while not _try_slot(client, job):
        if time.monotonic() > deadline:
            release_claim(run_id=run_id, worker=worker)
            raise Requeue(f"run {run_id}: no free slot on endpoint {job.endpoint_id}")
        if time.monotonic() > next_check:
            next_check = time.monotonic() + SLOT_CHECK_S
            if not still_claimed(run_id=run_id, worker=worker):
                log.info("run %s: cancelled while it waited for a slot", run_id)
                return
        time.sleep(SLOT_POLL_S)
    try:
        with session_scope() as session:
            began = begin(session=session, run_id=run_id, worker=worker)
        if not began:
            log.info("run %s: cancelled while it waited for a slot", run_id)
            return
        if attempt > 1:
            publisher.event("reset", {"attempt": attempt})
        publisher.event("state", {"status": "running", "attempt": attempt})
        publisher.workspace("run", {"id": run_id, "task_id": job.task_id, "status": "running"})
        outcome = stream_answer(job, settings, publisher)
    finally:
        _release(client, job)
    with session_scope() as session:
        written = record_outcome(session=session, job=job, worker=worker, outcome=outcome)
    if not written:
        log.warning("run %s: lost its claim before finishing; result discarded", run_id)
        return
    runs_log.info(
        "run %s %s: %s tokens%s%s", run_id, outcome.status, outcome.completion_tokens or 0,
        f", {outcome.tokens_per_second} tokens/s" if outcome.tokens_per_second else "",
        f" ({outcome.error})" if outcome.error else "",
    )  # fmt: skip
    terminal = "error" if outcome.status == RunStatus.failed else "done"
    publisher.event(
        terminal,
        {
            "status": str(outcome.status),
            "error": outcome.error,
            "completion_tokens": outcome.completion_tokens,
            "tokens_per_second": outcome.tokens_per_second,
        },
    )
    publisher.workspace(
        "run", {"id": run_id, "task_id": job.task_id, "status": str(outcome.status)}
    )


def _try_slot(client: redis.Redis, job: Job) -> bool:
    try:
        return take_slot(client, job)
    except redis.RedisError:
        return True  # without Redis there is no shared count; let the server queue it


def _release(client: redis.Redis, job: Job) -> None:
    with contextlib.suppress(redis.RedisError):
        release_slot(client, job)
