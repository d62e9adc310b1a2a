"""A worker's heartbeat: a Redis key refreshed every few seconds, read by ``/healthz``."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

import redis
from kombu.exceptions import KombuError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from app.db import get_engine
from app.engine.dispatch import endpoint_queue
from app.models import ModelEndpoint
from app.redis_conn import (
    CHECKER_HEARTBEAT_PREFIX,
    WORKER_HEARTBEAT_INTERVAL_S,
    WORKER_HEARTBEAT_PREFIX,
    WORKER_HEARTBEAT_TTL_S,
    get_redis,
)

log = logging.getLogger(__name__)
_stop = threading.Event()
_key: str | None = None


def _sync_queues(consumer: Any) -> None:
    """Consume the queue of every model endpoint, including ones added since the start.

    Asked of this worker's own consumer (on its event loop, as Celery's ``add_consumer``
    control command does), not broadcast: a broadcast sent before the worker's control
    channel listens is lost, and the worker would never take that endpoint's runs. Looked at on
    every beat, so a queue it somehow does not consume is added again."""
    with Session(get_engine()) as session:
        ids = session.exec(select(ModelEndpoint.id)).all()
    task_consumer = getattr(consumer, "task_consumer", None)
    for queue in (endpoint_queue(endpoint_id) for endpoint_id in ids if endpoint_id):
        if task_consumer is None or not task_consumer.consuming_from(queue):
            consumer.call_soon(consumer.add_task_queue, queue)


def _beat(key: str, consumer: Any, checker: bool) -> None:
    while not _stop.is_set():
        try:
            get_redis().set(key, str(time.time()), ex=WORKER_HEARTBEAT_TTL_S)
            if not checker:  # agent runs are not a checker's work
                _sync_queues(consumer)
        except (redis.RedisError, KombuError, SQLAlchemyError) as exc:
            log.warning("worker heartbeat failed: %s", exc)
        _stop.wait(WORKER_HEARTBEAT_INTERVAL_S)


def start(*, hostname: str, consumer: Any, checker: bool = False) -> None:
    """Begin beating (and, unless a checker, following new endpoints' queues with
    ``consumer``, the worker's Celery consumer) in a thread of the main process."""
    global _key
    prefix = CHECKER_HEARTBEAT_PREFIX if checker else WORKER_HEARTBEAT_PREFIX
    _key = f"{prefix}{hostname}:{os.getpid()}"
    _stop.clear()
    threading.Thread(
        target=_beat, args=(_key, consumer, checker), name="heartbeat", daemon=True
    ).start()


def stop() -> None:
    """Stop beating and withdraw the key, so health turns red at once, not after the TTL."""
    _stop.set()
    if _key is not None:
        with contextlib.suppress(redis.RedisError):
            get_redis().delete(_key)
