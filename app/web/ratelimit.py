"""Counting sign-in attempts in Redis, per account and per address.

An attempt is counted *before* the password is checked (INCR, then compare), so parallel
requests cannot all pass a check made before any of them was recorded; a successful sign-in
gives its attempt back. The account is counted by its normalised email, the same one the
lookup uses, so spaces or capitals do not start a fresh count.
"""

from __future__ import annotations

import contextlib

import redis

from app.redis_conn import get_redis
from app.services.accounts import normalise_email

WINDOW_S = 15 * 60
PER_ACCOUNT = 10
PER_ADDRESS = 30


def _key(kind: str, value: str) -> str:
    return f"sb:ratelimit:signin:{kind}:{value}"


def _keys(email: str, address: str) -> tuple[str, str]:
    return _key("account", normalise_email(email)), _key("address", address)


def take_attempt(*, email: str, address: str) -> bool:
    """Count one sign-in attempt; False when it is over the limit for the account or address."""
    try:
        pipe = get_redis().pipeline()  # MULTI/EXEC: the counts are the ones after this INCR
        for key in _keys(email, address):
            # The window starts at the first attempt (SET NX; EXPIRE NX needs Redis 7).
            pipe.set(key, 0, ex=WINDOW_S, nx=True)
            pipe.incr(key)
        _, account, _, by_address = pipe.execute()
    except redis.RedisError:
        return True  # without Redis there is no shared count; argon2 still slows guessing
    return int(account) <= PER_ACCOUNT and int(by_address) <= PER_ADDRESS


def succeeded(*, email: str, address: str) -> None:
    """A right password: the account starts afresh and the address gets its attempt back."""
    account, by_address = _keys(email, address)
    with contextlib.suppress(redis.RedisError):
        pipe = get_redis().pipeline()
        pipe.delete(account)
        pipe.decr(by_address)
        pipe.execute()
