"""The Celery app, configured from Settings for long runs that must never be lost.

Runs are acknowledged late and rejected when their worker dies, so Redis hands them out again
after the visibility timeout; the timeout must exceed the hard time limit, or a run still in
progress would be handed to a second worker.

The run worker is one process with a thread per run (``--pool threads``): runs are I/O. Celery
enforces no time limit on threads, so a run's limit is the runner's own deadline on the model's
stream; the checker (``--pool prefork``) keeps Celery's limits.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from app.config import Settings, SettingsError, get_settings
from app.db import get_engine, size_pool_for_threads
from app.engine.dispatch import CHECKS_QUEUE, SWEEP_CHECKS, SWEEP_RUNS, producer
from app.redis_conn import celery_broker_url, get_redis
from app.runtime.console import configure_logging
from workers import heartbeat

# With the 30 s claim lease, a dead worker's run is sent again within 45 s.
SWEEP_INTERVAL_S = 15.0


def check_delivery_settings(conf: Any) -> None:
    """Refuse a configuration under which Redis would redeliver a run that is still running."""
    visibility = conf.broker_transport_options.get("visibility_timeout")
    hard_limit = conf.task_time_limit
    if visibility is None or hard_limit is None or visibility <= hard_limit:
        raise SettingsError(
            f"The broker visibility timeout ({visibility}s) must be longer than the hard time "
            f"limit of a run ({hard_limit}s): set SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT above "
            "SWITCHBOARD_RUN_TIME_LIMIT."
        )


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``."""
    app = Celery("switchboard", include=["workers.tasks"])
    transport_options = {"visibility_timeout": settings.broker_visibility_timeout}
    app.conf.update(
        broker_url=celery_broker_url(settings.effective_redis_url),
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Take a message only for a free thread (or pool process): a worker that dies then
        # strands no message it had merely reserved (the claim's lease covers those it had
        # begun).
        worker_disable_prefetch=True,
        task_time_limit=settings.run_time_limit,
        task_soft_time_limit=max(settings.run_time_limit - 5, 1),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Runs write their results to SQL; nothing reads Celery results.
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        # A request must not hang on a dead broker: fail fast, the sweeper sends it later.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        beat_schedule={
            "sweep-runs": {"task": SWEEP_RUNS, "schedule": SWEEP_INTERVAL_S},
            "sweep-checks": {
                "task": SWEEP_CHECKS,
                "schedule": SWEEP_INTERVAL_S,
                "options": {"queue": CHECKS_QUEUE},
            },
        },
    )
    check_delivery_settings(app.conf)
    return app


celery_app = create_celery(get_settings())


def consumes_checks(consumer: Any) -> bool:
    """Whether this worker is a checker (it consumes the checks queue, and nothing else)."""
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    return any(queue.name == CHECKS_QUEUE for queue in queues)


@setup_logging.connect
def _log_like_the_stack(**_: Any) -> None:
    """The stack's one line format (app/runtime/console.py) instead of Celery's own."""
    configure_logging(get_settings().log_level)


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", "worker")
    checker = consumes_checks(sender)
    heartbeat.start(hostname=hostname, consumer=sender, checker=checker)
    # What a crash left behind is picked up at once, not at the first beat.
    if checker:
        celery_app.send_task(SWEEP_CHECKS, queue=CHECKS_QUEUE)
    else:
        celery_app.send_task(SWEEP_RUNS)


def uses_threads(worker: Any) -> bool:
    """Whether ``worker`` (Celery's WorkController, at ``worker_init``) runs a threads pool."""
    pool = getattr(worker, "pool_cls", None)
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    return name == "threads" or name.endswith(".thread")


@worker_init.connect
def _prepare_threads(sender: Any = None, **_: Any) -> None:
    """A threaded worker (the run worker) gets a database pool sized for its threads, and makes
    its process-wide clients here, once, before its threads would race to make them."""
    if not uses_threads(sender):
        return
    size_pool_for_threads(int(getattr(sender, "concurrency", None) or 1))
    get_engine()
    get_redis()
    producer()


@worker_process_init.connect
def _forget_inherited_connections(**_: Any) -> None:
    """A pool child must not use the database connections it inherited from the parent (two
    processes on one socket garble each other's queries): drop them, leaving the parent's."""
    get_engine().dispose(close=False)


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    heartbeat.stop()
