"""A worker's heartbeat: a Redis key refreshed every few seconds, read by ``/healthz``."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

import redis
from celery import Celery
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


def _sync_queues(app: Celery, hostname: str, consuming: set[str]) -> None:
    """Consume the queue of every model endpoint, including ones added since the start."""
    with Session(get_engine()) as session:
        ids = session.exec(select(ModelEndpoint.id)).all()
    for queue in (endpoint_queue(endpoint_id) for endpoint_id in ids if endpoint_id):
        if queue not in consuming:
            app.control.add_consumer(queue, destination=[hostname], reply=False)
            consuming.add(queue)


def _beat(key: str, app: Celery, hostname: str, checker: bool) -> None:
    consuming: set[str] = set()
    while not _stop.is_set():
        try:
            get_redis().set(key, str(time.time()), ex=WORKER_HEARTBEAT_TTL_S)
            if not checker:  # agent runs are not a checker's work
                _sync_queues(app, hostname, consuming)
        except (redis.RedisError, KombuError, SQLAlchemyError) as exc:
            log.warning("worker heartbeat failed: %s", exc)
        _stop.wait(WORKER_HEARTBEAT_INTERVAL_S)


def start(*, hostname: str, app: Celery, checker: bool = False) -> None:
    """Begin beating (and, unless a checker, following new endpoints' queues) in a thread of
    the main process."""
    global _key
    prefix = CHECKER_HEARTBEAT_PREFIX if checker else WORKER_HEARTBEAT_PREFIX
    _key = f"{prefix}{hostname}:{os.getpid()}"
    _stop.clear()
    threading.Thread(
        target=_beat, args=(_key, app, hostname, checker), name="heartbeat", daemon=True
    ).start()


def stop() -> None:
    """Stop beating and withdraw the key, so health turns red at once, not after the TTL."""
    _stop.set()
    if _key is not None:
        with contextlib.suppress(redis.RedisError):
            get_redis().delete(_key)
