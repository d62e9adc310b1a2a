"""The database engine and sessions; SQLite gets WAL mode, foreign keys and a busy timeout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

import app.models  # noqa: F401  (registers every table on the metadata)
from app.config import get_settings


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Web and worker processes write to one file; wait for the lock instead of failing.
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@dataclass(frozen=True)
class PoolSize:
    """Connections a process keeps open (``size``) and may open beyond them at a peak."""

    size: int = 5
    overflow: int = 10

    @classmethod
    def for_threads(cls, threads: int) -> PoolSize:
        """For a process of ``threads`` threads that each may hold a session at once, plus one
        heartbeat thread per run and the consumer's own: nobody ever waits for a connection,
        and at most ten stay open when idle (a worker scaled three times must not take a
        PostgreSQL server's default of 100 connections)."""
        peak = 2 * threads + 2
        size = min(peak, 10)
        return cls(size=size, overflow=peak - size)


DEFAULT_POOL = PoolSize()
_pool = DEFAULT_POOL


def create_db_engine(url: str, pool: PoolSize = DEFAULT_POOL) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and their pragmas set."""
    sa_url = sa.make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        if not sa_url.database or sa_url.database == ":memory:":  # one connection per thread
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        else:
            from pathlib import Path

            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
            # An SQLite connection costs a file handle, not a server's process: every one
            # opened is kept (a burst of requests then opens none, and sets no pragmas, again).
            engine = sa.create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 10},
                pool_size=pool.size + pool.overflow, max_overflow=0,
            )  # fmt: skip
        sa.event.listen(engine, "connect", _configure_sqlite)
        return engine
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=pool.size, max_overflow=pool.overflow
    )


def size_pool_for_threads(threads: int) -> None:
    """Size this process's pool for ``threads`` concurrent threads (a threaded worker calls it
    before its first query; an engine made earlier is replaced)."""
    global _pool
    _pool = PoolSize.for_threads(threads)
    if get_engine.cache_info().currsize:
        get_engine().dispose()
        get_engine.cache_clear()


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return create_db_engine(get_settings().effective_database_url, _pool)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
