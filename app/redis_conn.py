"""Redis connections, and the key names other processes agree on."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.commands.core import Script

from app.config import get_settings

WORKER_HEARTBEAT_PREFIX = "switchboard:worker-heartbeat:"
# Checkers beat under their own prefix: a checker is not a worker that can carry out runs.
CHECKER_HEARTBEAT_PREFIX = "switchboard:checker-heartbeat:"
WORKER_HEARTBEAT_INTERVAL_S = 5
WORKER_HEARTBEAT_TTL_S = 15


def connect(url: str, *, timeout: float = 2.0) -> redis.Redis:
    """A client for ``url`` (``redis://`` or ``unix://``) that gives up after ``timeout``."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
    )


@lru_cache
def get_redis() -> redis.Redis:
    """The process-wide client for the configured Redis."""
    return connect(get_settings().effective_redis_url)


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a unix socket ``redis+socket://``; redis-py spells it ``unix://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


@lru_cache(maxsize=32)
def script(client: redis.Redis, source: str) -> Script:
    """``source`` as a Lua script of ``client``, wrapped once (redis-py hashes it then, and
    calls it by its hash, loading it into a server that lacks it)."""
    return client.register_script(source)
