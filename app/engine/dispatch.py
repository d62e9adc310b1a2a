"""Sending committed runs to their model server's Celery queue — only ever after commit.

This is the one module of ``app/`` that talks to Celery. It sends tasks *by name* through a
producer-only Celery app, so ``app`` never imports ``workers`` (which imports ``app``).
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache

import redis
import sqlalchemy as sa
from celery import Celery, signature
from kombu.exceptions import KombuError
from sqlmodel import col, select

from app.config import get_settings
from app.db import get_engine
from app.engine import live
from app.engine.delivery import mark_dispatched
from app.models import Check, Judgement, Model, Run, RunStatus, Task
from app.redis_conn import celery_broker_url, get_redis

log = logging.getLogger(__name__)

# The names the tasks in workers/tasks.py are registered under.
RUN_AGENT = "switchboard.run_agent"
ADVANCE_PIPELINE = "switchboard.advance_pipeline"
SETTLE_JUDGEMENT = "switchboard.settle_judgement"
SWEEP_RUNS = "switchboard.sweep_runs"
RUN_CHECK = "switchboard.run_check"
SWEEP_CHECKS = "switchboard.sweep_checks"
# Checks have a queue of their own, consumed only by the checker worker (its own concurrency).
CHECKS_QUEUE = "checks"


def endpoint_queue(endpoint_id: int) -> str:
    """The Celery queue of one model endpoint."""
    return f"runs.endpoint.{endpoint_id}"


@lru_cache(maxsize=1)
def producer() -> Celery:
    """A Celery app that only sends (the workers configure the consuming side)."""
    settings = get_settings()
    app = Celery("switchboard-producer", set_as_current=False)
    app.conf.update(
        broker_url=celery_broker_url(settings.effective_redis_url),
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A request must not hang on a dead broker: fail fast, the sweeper sends it later.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
    return app


# What sending a run needs; prebuilt, and read on a bare connection (no ORM session): it is on
# the path from a request's commit to a worker starting the run.
_TO_SEND = (
    select(  # type: ignore[call-overload]
        Run.id,
        Model.endpoint_id,
        Run.pipeline_id,
        Task.workspace_id,
        Run.task_id,
        Judgement.id,
    )
    .join(Model, col(Model.id) == col(Run.model_id))
    .join(Task, col(Task.id) == col(Run.task_id))
    .outerjoin(Judgement, col(Judgement.run_id) == col(Run.id))
    .where(
        col(Run.id).in_(sa.bindparam("p_run_ids", expanding=True)), Run.status == RunStatus.queued
    )
)


def dispatch(run_ids: list[int]) -> bool:
    """Queue each run on its endpoint's queue; False when the broker is unreachable (the runs
    stay queued in SQL and the sweeper sends them once it is back). A run is marked sent
    before its message goes (``runs.enqueue``, the sweeper), so a successful send writes
    nothing; one that fails is marked unsent."""
    if not run_ids:
        return True
    with get_engine().connect() as connection:
        rows = connection.execute(_TO_SEND, {"p_run_ids": run_ids}).all()
    client = get_redis()
    app = producer()
    unsent: list[int] = []
    for run_id, endpoint_id, pipeline_id, workspace_id, task_id, judgement_id in rows:
        with contextlib.suppress(redis.RedisError):
            # Before the message: the worker's "running" must come after "queued".
            live.announce_queued(client, run_id=run_id, task_id=task_id, workspace_id=workspace_id)
        link = None
        if pipeline_id:
            link = signature(ADVANCE_PIPELINE, args=[run_id], immutable=True, app=app)
        elif judgement_id:
            link = signature(SETTLE_JUDGEMENT, args=[run_id], immutable=True, app=app)
        try:
            app.send_task(RUN_AGENT, args=[run_id], queue=endpoint_queue(endpoint_id), link=link)
        except (KombuError, redis.RedisError, OSError) as exc:
            log.warning("could not queue run %s (the sweeper will retry): %s", run_id, exc)
            unsent.append(run_id)
    mark_dispatched(Run, unsent, sent=False)
    return not unsent


def announce_cancel(run: Run) -> None:
    """After a committed cancel: end a queued run's live stream, or tell its worker to stop at
    once. Best effort: the cancel is in SQL already (the worker looks there too), so Redis
    being down must not turn it into an error."""
    assert run.id is not None
    try:
        client = get_redis()
        if run.status == RunStatus.cancelled:
            live.append_run(client, run.id, "done", {"status": "cancelled", "error": run.error})
        else:
            live.request_cancel(client, run.id)
    except (redis.RedisError, OSError) as exc:
        log.warning("run %s: cancel recorded, but Redis is unavailable: %s", run.id, exc)


def dispatch_retry(run_id: int) -> bool:
    """After a committed retry: a fresh live stream (late viewers must not stop at the last
    attempt's end), then the queue."""
    get_redis().delete(live.run_stream(run_id), live.cancel_flag(run_id))
    return dispatch([run_id])


def dispatch_checks(check_ids: list[int]) -> bool:
    """Queue committed checks on the checks queue; False when the broker is unreachable (they
    stay queued in SQL and the checks sweeper sends them later)."""
    app = producer()
    sent: list[int] = []
    for check_id in check_ids:
        try:
            app.send_task(RUN_CHECK, args=[check_id], queue=CHECKS_QUEUE)
        except (KombuError, redis.RedisError, OSError) as exc:
            log.warning("could not queue check %s (the sweeper will retry): %s", check_id, exc)
            continue
        sent.append(check_id)
    mark_dispatched(Check, sent)
    return len(sent) == len(check_ids)
