"""Passwords (argon2) and bearer tokens (32 random bytes, only their SHA-256 stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verifying against this keeps a sign-in for an unknown email as slow as one for a real account.
_DUMMY_HASH = _hasher.hash("switchboard-timing-equaliser")

MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; always spends the time of one argon2 check."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A fresh URL-safe token carrying 32 random bytes."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(given.encode(), expected.encode())
