"""Checks ``switchboard up`` makes before starting anything, each failing with one clear line."""

from __future__ import annotations

import errno
import socket

import redis
import sqlalchemy as sa

from app.db import create_db_engine
from app.redis_conn import connect


class PreflightError(RuntimeError):
    """A part cannot start; the message names the problem and the setting that fixes it."""


def redacted(url: str) -> str:
    """A URL safe to print: the password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1]


def check_port_free(host: str, port: int, setting: str = "SWITCHBOARD_PORT") -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PreflightError(
                    f"Port {port} on {host} is already in use (another Switchboard?); "
                    f"stop that program or set {setting} to a free port."
                ) from None
            raise PreflightError(
                f"Cannot listen on {host}:{port} ({exc.strerror}); set {setting}."
            ) from None


def check_database(url: str) -> None:
    try:
        engine = create_db_engine(url)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise PreflightError(
            f"SWITCHBOARD_DATABASE_URL is not a usable database URL ({exc}); "
            "use e.g. postgresql+psycopg://user:password@host/db, or leave it empty for SQLite."
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).strip()
        raise PreflightError(
            f"Cannot reach the database at {redacted(url)}: {reason.splitlines()[0]} — "
            "fix SWITCHBOARD_DATABASE_URL, or leave it empty for SQLite in the data folder."
        ) from None
    finally:
        engine.dispose()


def check_redis(url: str) -> None:
    try:
        client = connect(url, timeout=3)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise PreflightError(
            f"Cannot reach Redis at {redacted(url)}: {exc} — fix SWITCHBOARD_REDIS_URL, "
            "or leave it empty for the embedded Redis."
        ) from None


def free_loopback_port() -> int:
    """A loopback port nothing listens on now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
