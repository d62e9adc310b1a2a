"""Counting attempts in Redis: sign-in is limited per account and per address."""

from __future__ import annotations

import contextlib

import redis

from app.redis_conn import get_redis

WINDOW_S = 15 * 60
PER_ACCOUNT = 10
PER_ADDRESS = 30


def _key(kind: str, value: str) -> str:
    return f"sb:ratelimit:signin:{kind}:{value}"


def sign_in_blocked(*, email: str, address: str) -> bool:
    """Whether another failed attempt from here or for this account is refused for now."""
    try:
        client = get_redis()
        counts = client.mget(_key("account", email.lower()), _key("address", address))
    except redis.RedisError:
        return False  # without Redis there is no shared count; argon2 still slows guessing
    account, by_address = (int(c or 0) for c in counts)  # type: ignore[union-attr]
    return account >= PER_ACCOUNT or by_address >= PER_ADDRESS


def record_failure(*, email: str, address: str) -> None:
    try:
        client = get_redis()
        pipe = client.pipeline()
        for key in (_key("account", email.lower()), _key("address", address)):
            # The window starts at the first failure (SET NX; EXPIRE NX needs Redis 7).
            pipe.set(key, 0, ex=WINDOW_S, nx=True)
            pipe.incr(key)
        pipe.execute()
    except redis.RedisError:
        pass


def clear(*, email: str) -> None:
    with contextlib.suppress(redis.RedisError):
        get_redis().delete(_key("account", email.lower()))
