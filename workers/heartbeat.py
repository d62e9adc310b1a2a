"""A worker's heartbeat: a Redis key refreshed every few seconds, read by ``/healthz``."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

import redis

from app.redis_conn import (
    WORKER_HEARTBEAT_INTERVAL_S,
    WORKER_HEARTBEAT_PREFIX,
    WORKER_HEARTBEAT_TTL_S,
    get_redis,
)

log = logging.getLogger(__name__)
_stop = threading.Event()
_key: str | None = None


def _beat(key: str) -> None:
    while not _stop.is_set():
        try:
            get_redis().set(key, str(time.time()), ex=WORKER_HEARTBEAT_TTL_S)
        except redis.RedisError as exc:
            log.warning("worker heartbeat failed: %s", exc)
        _stop.wait(WORKER_HEARTBEAT_INTERVAL_S)


def start(*, hostname: str) -> None:
    """Begin beating in a daemon thread of the worker's main process."""
    global _key
    _key = f"{WORKER_HEARTBEAT_PREFIX}{hostname}:{os.getpid()}"
    _stop.clear()
    threading.Thread(target=_beat, args=(_key,), name="heartbeat", daemon=True).start()


def stop() -> None:
    """Stop beating and withdraw the key, so health turns red at once, not after the TTL."""
    _stop.set()
    if _key is not None:
        with contextlib.suppress(redis.RedisError):
            get_redis().delete(_key)
