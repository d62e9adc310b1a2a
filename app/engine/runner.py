"""Carrying out one run on a worker: claim it, stream the model, publish, finish — once.

Delivery is at-least-once (late acks, requeue on worker loss), so everything here is
idempotent. A run is *claimed* by one conditional UPDATE that takes it when it is queued, or
running under a lease that has run out (its worker died). It stays queued — with its queue
position, cancellable at once — while its worker waits for a slot of its model server; it
*begins* (running, one more attempt) only with a slot. A run whose worker has died
``MAX_ATTEMPTS`` times ends failed instead of looping. The answer message exists from the start
(one per run, by a unique constraint); the final write fills it in only while this worker still
holds the claim.

The claim's lease is short (``SWITCHBOARD_RUN_LEASE``, 30 s) and a heartbeat thread renews it,
and the endpoint slot's lease with it, while the worker works — waiting for a slot, waiting for
a first token, streaming. A worker that dies stops renewing. A killed prefork pool process's
message is redelivered at once (reject on worker lost); a killed threaded worker's messages
wait for the visibility timeout, so the sweeper sends its runs again. Either delivery takes the
run over: at once when the dead process ran on its machine (``holder_is_gone``), else when the
lease lapses (``Held``: it comes back then). The sweeper covers messages that were lost.

A worker process runs many deliveries at once on threads: each claims under its own name
(``worker_name``), and the run's time limit is this module's own deadline on the model's stream
(Celery enforces none on threads).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app import logs
from app.config import Settings
from app.db import session_scope
from app.engine import live
from app.engine.conversation import message_path, render_context, render_transcript
from app.engine.delivery import (
    Held,
    held_by,
    held_for,
    holder_is_gone,
    holder_of,
    is_held,
    lapsed,
    update_held,
)
from app.engine.loop_guard import LoopGuard
from app.engine.starting import starting_key
from app.llm import Finish, ModelError, TextDelta, Timeouts, stream_chat, stream_completion
from app.models import Agent, Message, Model, ModelEndpoint, Run, RunStatus, Task
from app.models.common import utcnow
from app.redis_conn import script
from app.services.workspaces import record_event

log = logging.getLogger(__name__)
# One line per finished run, shown even on a quiet console (app/runtime/console.py).
runs_log = logging.getLogger("switchboard.runs")

MAX_ATTEMPTS = 3
_ACTIVE = (RunStatus.queued, RunStatus.running)
FLUSH_INTERVAL_S = 0.05
# A run waits this long with its worker process for a free slot of its model server, then goes
# back to its queue (freeing the process for other endpoints' runs).
SLOT_WAIT_S = 5.0
SLOT_POLL_S = 0.1
SLOT_CHECK_S = 1.0  # how often a run waiting for a slot looks whether it was cancelled
CANCEL_CHECK_S = 1.0  # how often a running run looks in SQL for a durable cancel request


class Requeue(Exception):
    """The model server is at its concurrency limit, or still starting: put the run back in
    its queue, to be tried again after ``seconds``."""

    def __init__(self, message: str, seconds: float = 1.0) -> None:
        super().__init__(message)
        self.seconds = seconds


class CannotRun(Exception):
    """The run's agent, model or server is gone; the message says which."""


__all__ = ["Held", "holder_is_gone"]  # raised and used here, defined in app.engine.delivery


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
    """How long a claim holds unless its worker renews it (it does, every third of that)."""
    return timedelta(seconds=settings.run_lease)


# The queue → start hop runs the claim, the seat and the start once per run: prebuilt Core
# statements, executed on the session's connection. Built per call and run through the ORM's
# bulk-update path, the claim alone cost ~2 ms of Python (its SQL, ~0.3).
_run: sa.Table = Run.__table__  # type: ignore[attr-defined]
_CLAIM = (
    sa.update(_run)
    .where(
        _run.c.id == sa.bindparam("p_run_id"),
        sa.or_(
            sa.and_(
                _run.c.status == RunStatus.queued,
                sa.or_(
                    _run.c.claimed_by.is_(None),  # free (a lease is then the sweeper's)
                    _run.c.lease_until.is_(None),
                    lapsed(Run, sa.bindparam("p_now")),
                ),
            ),
            sa.and_(
                _run.c.status == RunStatus.running,
                lapsed(Run, sa.bindparam("p_now")),
                _run.c.cancel_requested_at.is_(None),  # end_cancelled_orphan's
            ),
            sa.and_(  # a holder known to be dead (NULL, never equal to anything, when none)
                _run.c.claimed_by == sa.bindparam("p_dead"),
                _run.c.status.in_([RunStatus.queued, RunStatus.running]),
                _run.c.cancel_requested_at.is_(None),
            ),
        ),
    )
    .values(
        status=RunStatus.queued,
        claimed_by=sa.bindparam("p_worker"),
        lease_until=sa.bindparam("p_lease_until"),
    )
    .returning(_run.c.attempts)
)
_BEGIN = (
    sa.update(_run)
    .where(
        held_by(
            Run,
            sa.bindparam("p_run_id"),
            worker=sa.bindparam("p_worker"),
            statuses=(RunStatus.queued,),
        )  # fmt: skip
    )
    .values(
        status=RunStatus.running,
        cancel_requested_at=None,  # a request for an earlier attempt (then retried)
        attempts=_run.c.attempts + 1,
        started_at=sa.func.coalesce(
            _run.c.started_at, sa.bindparam("p_now", type_=_run.c.started_at.type)
        ),
    )
)


def claim(
    *, session: Session, run_id: int, worker: str, lease: timedelta, dead: str | None = None
) -> int | None:
    """Take the run for this worker, still queued; its attempts so far, or None when it is not
    ours to run. The lease lapses unless the worker's heartbeat renews it; ``dead`` names a
    holder known to be dead (``holder_is_gone``), whose lease need not be waited for."""
    now = utcnow()
    attempts = (
        session.connection()
        .execute(
            _CLAIM,
            {
                "p_run_id": run_id,
                "p_now": now,
                "p_dead": dead,
                "p_worker": worker,
                "p_lease_until": now + lease,
            },
        )
        .scalar_one_or_none()
    )
    return int(attempts) if attempts is not None else None


def end_cancelled_orphan(*, session: Session, run_id: int) -> bool:
    """A run cancelled while running whose worker died before it saw the request ends
    cancelled (it is not run again)."""
    task_id = session.execute(
        sa.update(Run)
        .where(
            col(Run.id) == run_id,
            col(Run.status) == RunStatus.running,
            lapsed(Run, utcnow()),
            col(Run.cancel_requested_at).is_not(None),
        )
        .values(
            status=RunStatus.cancelled,
            finished_at=utcnow(),
            lease_until=None,
            error="Cancelled; its worker stopped before it could finish.",
        )
        .returning(col(Run.task_id))
    ).scalar_one_or_none()
    if task_id is None:
        return False
    settle_task(session=session, task_id=task_id)
    return True


def worker_name(node: str) -> str:
    """This delivery's name as a claim holder: "node@host:pid:thread". Threads of one worker
    process carry out runs side by side, and each must hold its claims alone (a duplicate
    delivery's error on another thread must not end the run this one streams)."""
    return f"{node}:{os.getpid()}:{threading.get_native_id()}"


def renew(*, session: Session, run_id: int, worker: str, lease: timedelta) -> bool:
    """Extend this worker's claim on an unfinished run; False when it is no longer ours."""
    return update_held(
        session, Run, run_id, worker=worker, statuses=_ACTIVE, lease_until=utcnow() + lease
    )


def cancel_recorded(*, run_id: int) -> bool:
    """Whether someone asked (durably, in SQL) for this run to stop."""
    with session_scope() as session:
        requested = session.exec(select(Run.cancel_requested_at).where(Run.id == run_id)).first()
    return requested is not None


def begin(*, session: Session, run_id: int, worker: str) -> bool:
    """Start the claimed run (it holds a slot now): running, one more attempt. False when it
    was cancelled while it waited."""
    started = session.connection().execute(
        _BEGIN, {"p_run_id": run_id, "p_worker": worker, "p_now": utcnow()}
    )
    return bool(started.rowcount)


def still_claimed(*, run_id: int, worker: str) -> bool:
    """Whether the run still waits with this worker (not cancelled meanwhile)."""
    with session_scope() as session:
        return is_held(session, Run, run_id, worker=worker, statuses=(RunStatus.queued,))


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

# A slot already held is renewed; a new one is refused while the server starts (KEYS[2], its
# note: its runs wait) or when all ``max_concurrency`` are taken — one round trip for both.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1
"""


class SlotHolder(Protocol):
    """What taking an endpoint slot needs: a Job, or a Seat before the job is built."""

    @property
    def run_id(self) -> int: ...
    @property
    def endpoint_id(self) -> int: ...
    @property
    def max_concurrency(self) -> int: ...


@dataclass(frozen=True)
class Seat:
    run_id: int
    endpoint_id: int
    max_concurrency: int


_SEAT = (
    select(Model.endpoint_id, ModelEndpoint.max_concurrency)  # type: ignore[call-overload]
    .join(Run, col(Run.model_id) == col(Model.id))
    .join(ModelEndpoint, col(ModelEndpoint.id) == col(Model.endpoint_id))
    .where(col(Run.id) == sa.bindparam("p_run_id"), col(ModelEndpoint.enabled).is_(True))
)


def seat_of(session: Session, run_id: int) -> Seat | None:
    """The run's endpoint and its concurrency, when it has one that is enabled."""
    row = session.connection().execute(_SEAT, {"p_run_id": run_id}).first()
    return Seat(run_id, row[0], row[1]) if row is not None else None


def _slots_key(endpoint_id: int) -> str:
    return f"sb:endpoint:{endpoint_id}:slots"


def take_slot(client: redis.Redis, job: SlotHolder, lease_s: float) -> bool:
    """One of the endpoint's ``max_concurrency`` slots, held under a lease that lapses if the
    worker dies (so a killed worker never keeps a slot); taking it again renews the lease.
    None is given while the server is still starting."""
    now = time.time()
    keys = [_slots_key(job.endpoint_id), starting_key(job.endpoint_id)]
    args = [now, now + lease_s, job.run_id, job.max_concurrency]
    return bool(script(client, _ACQUIRE)(keys=keys, args=args))


def release_slot(client: redis.Redis, job: SlotHolder) -> None:
    client.zrem(_slots_key(job.endpoint_id), job.run_id)


class SlotWaiters:
    """How many of this process's threads wait for a slot of each endpoint. One waiter per
    endpoint is enough to take a slot the moment it frees; more would only hold threads that
    other endpoints' runs need (an endpoint whose model hangs keeps its slots busy, and every
    run of it that came next would wait in a thread). Runs beyond the first go back to their
    queue at once."""

    def __init__(self, per_endpoint: int = 1) -> None:
        self.per_endpoint = per_endpoint
        self._lock = threading.Lock()
        self._waiting: dict[int, int] = {}

    def enter(self, endpoint_id: int) -> bool:
        with self._lock:
            if self._waiting.get(endpoint_id, 0) >= self.per_endpoint:
                return False
            self._waiting[endpoint_id] = self._waiting.get(endpoint_id, 0) + 1
            return True

    def leave(self, endpoint_id: int) -> None:
        with self._lock:
            left = self._waiting.get(endpoint_id, 0) - 1
            if left > 0:
                self._waiting[endpoint_id] = left
            else:
                self._waiting.pop(endpoint_id, None)


slot_waiters = SlotWaiters()


# --- the heartbeat: the claim and the slot stay ours while this worker is alive -----------


class Heartbeat:
    """A thread that renews the run's claim (and, once taken, its endpoint slot) every third
    of the lease, and looks every second for a durable cancel request. It runs while the worker
    waits for a slot, waits for a first token (a long prompt sends nothing for a while) and
    streams; it stops with the delivery, so a dead worker's lease lapses within one lease."""

    def __init__(
        self, *, run_id: int, worker: str, settings: Settings, client: redis.Redis
    ) -> None:
        self.run_id = run_id
        self.worker = worker
        self.lease = run_lease(settings)
        self.slot_lease_s = settings.endpoint_slot_lease
        self.client = client
        self.job: Job | None = None  # set once the run holds its endpoint slot
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"run-{run_id}-heartbeat")
        self._thread.daemon = True

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def holding_slot(self, job: Job | None) -> None:
        """From now on renew ``job``'s endpoint slot too (None: the slot was given back)."""
        self.job = job

    def beat(self) -> None:
        """Renew the claim and the slot once (also called by the tests)."""
        with session_scope() as session:
            if not renew(session=session, run_id=self.run_id, worker=self.worker, lease=self.lease):
                self.lost.set()
        if self.job is not None:
            with contextlib.suppress(redis.RedisError):
                take_slot(self.client, self.job, self.slot_lease_s)

    def _run(self) -> None:
        renew_every = min(self.lease.total_seconds(), self.slot_lease_s) / 3
        next_renewal = time.monotonic() + renew_every
        while not self._stop.wait(min(CANCEL_CHECK_S, renew_every)):
            try:
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + renew_every
                    self.beat()
                if not self.cancelled.is_set() and cancel_recorded(run_id=self.run_id):
                    self.cancelled.set()
            except Exception as exc:  # a database hiccup must not end the heartbeat
                log.warning("run %s: heartbeat failed, retrying: %s", self.run_id, exc)


# --- publishing ----------------------------------------------------------------------------


class Publisher:
    """Appends a run's tokens to its Redis stream, coalesced every ~50 ms.

    Redis going away must not fail the run: publishing stops, the model keeps streaming, and
    the text still reaches SQL (viewers then read it from there). Redis coming back empty (a
    restart without persistence) must not leave a stream that holds only the tail of the text:
    the stream starts over with a ``reset`` and the whole text so far.
    """

    def __init__(self, client: redis.Redis, job: Job, heartbeat: Heartbeat | None = None) -> None:
        self.client = client
        self.job = job
        self.heartbeat = heartbeat
        self.pending: list[str] = []
        self.published: list[str] = []
        self.received: list[str] = []  # every token, published or not (kept on a failure)
        self.last_flush = time.monotonic()
        self.healthy = True
        self.live = live.LiveRun(client, job.run_id)
        self.cancel_seen: bool | None = None  # what the last flush of tokens found, unread

    def _send(self, type_: str, data: dict[str, Any]) -> None:
        if not self.healthy:
            return
        run_id = self.job.run_id
        try:
            added, cancelled = self.live.append_if_live(type_, data)
            if not added:  # lost: start it over
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
            self.cancel_seen = cancelled

    def event(self, type_: str, data: dict[str, Any]) -> None:
        self.flush()
        self._send(type_, data)

    def token(self, text: str) -> bool:
        """Buffer ``text``; True when a flush happened (a good moment to look for a cancel)."""
        self.pending.append(text)
        self.received.append(text)
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

    def cancel_requested(self) -> bool:
        """The Redis flag (seen at once; by the flush just before, when there was one), or the
        durable request the heartbeat found in SQL."""
        if self.heartbeat is not None and self.heartbeat.cancelled.is_set():
            return True
        seen, self.cancel_seen = self.cancel_seen, None
        if seen is not None:
            return seen
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


def stream_answer(
    job: Job, settings: Settings, publisher: Publisher, stop_at: float | None = None
) -> Outcome:
    """Stream the model's answer; stop early on cancel, or at ``stop_at`` (a monotonic instant:
    the run's time limit); never raise for a model failure."""
    timeouts = Timeouts(
        connect=settings.model_connect_timeout,
        first_token=settings.model_first_token_timeout,
        between_tokens=settings.model_between_tokens_timeout,
        stop_at=stop_at,
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
    unchecked = 0  # parts the loop guard has yet to see
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
            unchecked += 1
            # The guard and the cancel flag are looked at when the publisher flushes (the
            # first token, then every ~50 ms), not at every token: a loop is found a few
            # tokens later, and its text is cut all the same.
            if not publisher.token(text):
                continue
            if guard is not None and guard.feed("".join(parts[-unchecked:])):
                break
            unchecked = 0
            if publisher.cancel_requested():
                status = RunStatus.cancelled
                error = "Cancelled; the text so far is kept."
                break
    except ModelError as exc:
        status, error = RunStatus.failed, exc.message
        if stop_at is not None and time.monotonic() >= stop_at:
            error = _time_limit_message(settings)
    finally:
        events.close()  # closes the connection: the server frees the slot at once
    # What came since the last flush is looked at too: a loop found there counts even if the
    # stream then failed (looked at per token, it would have been stopped before).
    if (
        guard is not None
        and status is not RunStatus.cancelled
        and (guard.looping or (unchecked and guard.feed("".join(parts[-unchecked:]))))
    ):
        # The stored answer is the text before the loop; the done event that follows makes
        # viewers render it from SQL.
        status, error, parts = RunStatus.succeeded, LOOP_STOPPED, [guard.kept]
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
    written = update_held(
        session, Run, job.run_id, worker=worker, statuses=(RunStatus.running,),
        status=outcome.status,
        error=outcome.error,
        first_token_at=outcome.first_token_at,
        finished_at=outcome.finished_at or utcnow(),
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        tokens_per_second=outcome.tokens_per_second,
        context_trimmed=job.trimmed,
        lease_until=None,
    )  # fmt: skip
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
    """A running task with nothing left running goes to review.

    The task row is locked first (``SELECT … FOR UPDATE``; SQLite has one writer anyway), so
    of two runs finishing together the second waits for the first to commit and then sees it
    finished: under READ COMMITTED each would otherwise see the other still running."""
    task = session.exec(select(Task).where(Task.id == task_id).with_for_update()).first()
    if task is None or task.status != "running":
        return
    active = session.exec(
        select(Run.id).where(
            Run.task_id == task_id, col(Run.status).in_([RunStatus.queued, RunStatus.running])
        )
    ).first()
    if active is None:
        task.status = "review"
        task.updated_at = utcnow()
        session.add(task)


def fail(
    *, run_id: int, reason: str, client: redis.Redis | None, worker: str | None = None
) -> None:
    """End an unfinished run failed (sweeper, poison, a run that cannot go on). With ``worker``,
    only while that worker holds the claim: a duplicate delivery's error must not fail a run
    another worker is streaming."""
    with session_scope() as session:
        guards = [
            col(Run.id) == run_id,
            col(Run.status).in_([RunStatus.queued, RunStatus.running]),
        ]
        if worker is not None:
            guards.append(col(Run.claimed_by) == worker)
        failed = session.execute(  # type: ignore[attr-defined]
            sa.update(Run)
            .where(*guards)
            .values(status=RunStatus.failed, error=reason, finished_at=utcnow(), lease_until=None)
        ).rowcount
        if not failed:
            return
        run = session.get(Run, run_id)
        assert run is not None
        task = session.get(Task, run.task_id)
        assert task is not None
        record_event(
            session=session, workspace_id=task.workspace_id, actor=None, verb="failed",
            subject_type="run", subject_id=run_id, data={"task_id": task.id},
        )  # fmt: skip
        settle_task(session=session, task_id=task.id)  # type: ignore[arg-type]
        workspace_id = task.workspace_id
    if client is not None:
        with contextlib.suppress(redis.RedisError):
            live.append_run(client, run_id, "error", {"status": "failed", "error": reason})
            live.append_workspace(client, workspace_id, "run", {"id": run_id, "status": "failed"})


def release_claim(*, run_id: int, worker: str, lease: timedelta) -> None:
    """Give a claimed run back to the queue before it began (no slot was free). Its task is
    retried in a moment, a message this worker holds meanwhile: it counts as just dispatched
    (the lost-message rule must not send it again), and it keeps a lease, unclaimed, for the
    sweeper — should this worker die, the retry dies with it, and the run is sent again once
    that lease lapses."""
    now = utcnow()
    with session_scope() as session:
        update_held(
            session, Run, run_id, worker=worker, statuses=(RunStatus.queued,),
            claimed_by=None, lease_until=now + lease, dispatched_at=now,
        )  # fmt: skip


def _time_limit_message(settings: Settings) -> str:
    return (
        f"It ran longer than the {settings.run_time_limit}s limit "
        "(SWITCHBOARD_RUN_TIME_LIMIT); the text so far is kept."
    )


def _failure(
    exc: BaseException, settings: Settings, time_limit_error: type[BaseException] | None
) -> str:
    if time_limit_error is not None and isinstance(exc, time_limit_error):
        return _time_limit_message(settings)
    return (
        f"The worker hit an unexpected error ({type(exc).__name__}); it is logged, and the "
        "text so far is kept."
    )


def execute_run(
    *,
    run_id: int,
    worker: str,
    settings: Settings,
    client: redis.Redis,
    time_limit_error: type[BaseException] | None = None,
) -> None:
    """Carry out one delivery of a run. Raises Requeue when its server has no free slot, Held
    when another worker's lease on it has not lapsed yet. The run's time limit (counted from
    this delivery's start; the threads of a worker have no Celery time limit), a
    ``time_limit_error`` (Celery's soft limit, where a pool has one) or any other error while
    it streams ends the run failed with the text so far.

    The claim, the start — when its server has a free slot at once, the common case — and the
    job's context are one transaction: the queue → start hop pays one commit, not three."""
    stop_at = time.monotonic() + settings.run_time_limit
    logs.bind_run(run_id)
    lease = run_lease(settings)
    job: Job | None = None
    cannot_run: str | None = None
    seat: Seat | None = None
    slot = began = committed = False
    try:
        with session_scope() as session:
            attempts = _claim_or_take_over(session, run_id, worker, lease)
            held = None if attempts is not None else held_for(session, Run, run_id)
            if attempts is not None and attempts < MAX_ATTEMPTS:
                # Started as soon as it holds a slot; building its context is its first work.
                seat = seat_of(session, run_id)
                slot = seat is not None and _try_slot(client, seat, settings.endpoint_slot_lease)
                began = slot and begin(session=session, run_id=run_id, worker=worker)
                try:
                    job = prepare(session=session, run_id=run_id, attempt=attempts + 1)
                except CannotRun as exc:
                    cannot_run = str(exc)
        committed = True
    finally:
        if slot and seat is not None and not (began and committed and job is not None):
            _release(client, seat)  # not carried out here after all
    if attempts is None:
        if held is not None:
            raise Held(f"run {run_id}", held + 1)
        log.info("run %s: not claimable (finished or cancelled)", run_id)
        return
    if job is None:
        reason = cannot_run or f"Its worker died {MAX_ATTEMPTS} times while running it; giving up."
        fail(run_id=run_id, reason=reason, client=client, worker=worker)
        return
    heartbeat = Heartbeat(run_id=run_id, worker=worker, settings=settings, client=client).start()
    try:
        _carry_out(job, worker, settings, client, heartbeat, time_limit_error, stop_at, began)
    finally:
        heartbeat.stop()


def _claim_or_take_over(session: Session, run_id: int, worker: str, lease: timedelta) -> int | None:
    """Claim the run: its attempts so far, or None when it is not ours (finished, cancelled,
    or held by a live worker). A holder known to be dead is taken over at once."""
    attempts = claim(session=session, run_id=run_id, worker=worker, lease=lease)
    if attempts is not None or end_cancelled_orphan(session=session, run_id=run_id):
        return attempts
    holder = holder_of(session, Run, run_id)
    if holder_is_gone(holder) and holder != worker:
        log.warning("run %s: its worker %s died; taking it over", run_id, holder)
        return claim(session=session, run_id=run_id, worker=worker, lease=lease, dead=holder)
    return None


def _carry_out(
    job: Job,
    worker: str,
    settings: Settings,
    client: redis.Redis,
    heartbeat: Heartbeat,
    time_limit_error: type[BaseException] | None,
    stop_at: float | None = None,
    began: bool = False,
) -> None:
    """Stream the answer and record it. ``began``: the run holds its slot and is running
    already (started in its claim's transaction); otherwise wait for a slot and start it."""
    run_id = job.run_id
    publisher = Publisher(client, job, heartbeat)
    slot_now = began or _try_slot(client, job, settings.endpoint_slot_lease)
    if not slot_now and not _wait_for_slot(client, job, worker, settings):
        return
    heartbeat.holding_slot(job)
    try:
        if not began:
            with session_scope() as session:
                began = begin(session=session, run_id=run_id, worker=worker)
            if not began:
                log.info("run %s: cancelled while it waited for a slot", run_id)
                return
        if job.attempt > 1:
            publisher.event("reset", {"attempt": job.attempt})
        publisher.event("state", {"status": "running", "attempt": job.attempt})
        publisher.workspace("run", {"id": run_id, "task_id": job.task_id, "status": "running"})
        try:
            outcome = stream_answer(job, settings, publisher, stop_at)
        except Exception as exc:
            # The time limit or a bug: the run ends failed, with what it had streamed.
            log.exception("run %s: stopped by %s", run_id, type(exc).__name__)
            publisher.flush()
            outcome = Outcome(
                RunStatus.failed,
                "".join(publisher.received),
                _failure(exc, settings, time_limit_error),
                finished_at=utcnow(),
            )
    finally:
        heartbeat.holding_slot(None)  # or its next beat would take the slot back
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


def _wait_for_slot(client: redis.Redis, job: Job, worker: str, settings: Settings) -> bool:
    """Wait up to ``SLOT_WAIT_S`` for a slot: True once taken, False when the run was cancelled
    meanwhile; raises Requeue (the run given back to its queue) when none came, or when another
    thread of this process already waits for this endpoint."""
    run_id = job.run_id
    if not slot_waiters.enter(job.endpoint_id):
        release_claim(run_id=run_id, worker=worker, lease=run_lease(settings))
        # The waiting run takes the next slot; this one comes back when that wait would end.
        raise Requeue(
            f"run {run_id}: endpoint {job.endpoint_id} is full, and a run waits", SLOT_WAIT_S
        )
    try:
        deadline = time.monotonic() + SLOT_WAIT_S
        next_check = time.monotonic() + SLOT_CHECK_S
        while not _try_slot(client, job, settings.endpoint_slot_lease):
            if time.monotonic() > deadline:
                release_claim(run_id=run_id, worker=worker, lease=run_lease(settings))
                raise Requeue(f"run {run_id}: no free slot on endpoint {job.endpoint_id}")
            if time.monotonic() > next_check:
                next_check = time.monotonic() + SLOT_CHECK_S
                if not still_claimed(run_id=run_id, worker=worker):
                    log.info("run %s: cancelled while it waited for a slot", run_id)
                    return False
            time.sleep(SLOT_POLL_S)
        return True
    finally:
        slot_waiters.leave(job.endpoint_id)


def _try_slot(client: redis.Redis, job: SlotHolder, lease_s: float) -> bool:
    """A slot of the endpoint; none while the server is still starting (its runs wait)."""
    try:
        return take_slot(client, job, lease_s)
    except redis.RedisError:
        return True  # without Redis there is no shared count; let the server queue it


def _release(client: redis.Redis, job: SlotHolder) -> None:
    with contextlib.suppress(redis.RedisError):
        release_slot(client, job)
