"""Test set-up: a fresh database and Redis for the session, wired in before any app import.

By default the suite runs on SQLite and the embedded Redis. CI points it at real servers:
``SWITCHBOARD_TEST_DATABASE_URL`` (a PostgreSQL server where a fresh database is created) and
``SWITCHBOARD_TEST_REDIS_URL``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

TEST_DATABASE_URL = os.environ.get("SWITCHBOARD_TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Short, so the embedded Redis socket path stays under the unix limit.
DATA_DIR = Path(tempfile.mkdtemp(prefix="sbt-", dir="/tmp"))
_embedded_redis: subprocess.Popen[bytes] | None = None


def fresh_postgres_url(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; return its URL."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, name: str) -> None:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pytest_configure(config: pytest.Config) -> None:
    global _embedded_redis
    if TEST_DATABASE_URL:
        database_url = fresh_postgres_url(TEST_DATABASE_URL, f"sb_test_{os.getpid()}")
    else:
        database_url = f"sqlite:///{DATA_DIR / 'test.db'}"
    if TEST_REDIS_URL:
        redis_url = TEST_REDIS_URL
    else:
        from app.runtime import embedded_redis

        _embedded_redis = embedded_redis.start(DATA_DIR / "redis")
        redis_url = f"unix://{DATA_DIR / 'redis' / 'redis.sock'}"
    os.environ.update(
        {
            "SWITCHBOARD_ENVIRONMENT": "development",
            "SWITCHBOARD_DATA_DIR": str(DATA_DIR),
            "SWITCHBOARD_DATABASE_URL": database_url,
            "SWITCHBOARD_REDIS_URL": redis_url,
            "SWITCHBOARD_RUN_TIME_LIMIT": "60",
            "SWITCHBOARD_BROKER_VISIBILITY_TIMEOUT": "90",
            # Other stacks on this machine may listen on the usual model ports.
            "SWITCHBOARD_DISCOVERY_PORTS": "none",
        }
    )
    from app.runtime.migrate import upgrade_to_head

    upgrade_to_head(database_url)


def pytest_unconfigure(config: pytest.Config) -> None:
    from app.db import get_engine

    get_engine().dispose()
    if TEST_DATABASE_URL:
        drop_postgres_database(TEST_DATABASE_URL, f"sb_test_{os.getpid()}")
    if _embedded_redis is not None:
        from app.runtime import embedded_redis

        embedded_redis.stop(_embedded_redis)
    shutil.rmtree(DATA_DIR, ignore_errors=True)


def _stop_leftover_runs(engine) -> None:
    """Runs a test left going must not outlive it: ids start again at 1 in the next test, and
    a straggling worker would write into that test's run of the same id (its live stream).

    Each is cancelled in SQL (its claim is gone, so it can write nothing more there) and by its
    Redis flag; then this waits, with a deadline, until no worker holds a model server slot any
    more: a worker gives its slot back only after its last write to the run's live stream."""
    import time

    from app.engine import live
    from app.models import Run
    from app.models.common import utcnow
    from app.redis_conn import get_redis

    with engine.begin() as connection:
        active = (
            connection.execute(sa.select(Run.id).where(Run.status.in_(["queued", "running"])))
            .scalars()
            .all()
        )
        if active:
            connection.execute(
                sa.update(Run)
                .where(Run.id.in_(active))
                .values(status="cancelled", lease_until=None, cancel_requested_at=utcnow())
            )
    client = get_redis()
    for run_id in active:
        live.request_cancel(client, run_id)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
        client.zcount(key, time.time(), "+inf")
        for key in client.scan_iter(match="sb:endpoint:*:slots")
    ):
        time.sleep(0.05)


def _empty_tables(engine, tables) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in tables)
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                connection.execute(table.delete())
            # Like RESTART IDENTITY: ids count from 1 again in the next test.
            connection.execute(sa.text("DELETE FROM sqlite_sequence"))


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Every test starts with empty tables and an empty Redis database."""
    yield
    from sqlmodel import SQLModel

    from app.db import get_engine
    from app.redis_conn import get_redis

    engine = get_engine()
    _stop_leftover_runs(engine)
    # A worker still finishing a cancelled run holds a share lock on one table while it reads
    # the next; TRUNCATE takes its exclusive locks table by table, so PostgreSQL may abort it
    # as the deadlock's victim. The worker's transaction is short: the next attempt waits it out.
    for attempt in range(5):
        try:
            _empty_tables(engine, SQLModel.metadata.sorted_tables)
            break
        except sa.exc.OperationalError as exc:
            if attempt == 4 or getattr(exc.orig, "sqlstate", None) != "40P01":
                raise
    get_redis().flushdb()
    (DATA_DIR / "setup_token").unlink(missing_ok=True)


@pytest.fixture
def session() -> Iterator[object]:
    from sqlmodel import Session

    from app.db import get_engine

    with Session(get_engine(), expire_on_commit=False) as db_session:
        yield db_session


@pytest.fixture
def client() -> Iterator[object]:
    from fastapi.testclient import TestClient

    from app.web.app import create_app

    with TestClient(create_app(), base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture(scope="session")
def _scripted_server() -> Iterator[object]:
    from tests.scripted_server import ScriptedServer, ServerThread

    app = ScriptedServer()
    thread = ServerThread(app)
    thread.start()
    try:
        yield app
    finally:
        thread.stop()


@pytest.fixture
def model_server(_scripted_server):
    """A scripted model server (real HTTP on loopback) for injecting faults; starts empty."""
    _scripted_server.reset()
    yield _scripted_server
    _scripted_server.reset()


@pytest.fixture(scope="session")
def llama_server():
    """The real embedded model: Gemma 3 270M on llama-server, started once for the session."""
    from app.runtime import embedded_model
    from tests.scripted_server import unused_port

    server = embedded_model.start(
        DATA_DIR / "model", port=unused_port(), parallel=2, context=2048, timeout=180
    )
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(30)


def _started(process):
    """The shared worker process, started again if a test stopped it (or it died)."""
    if process.process is None or process.process.poll() is not None:
        process.start()
    return process


@pytest.fixture(scope="session")
def _session_worker():
    from tests.worker_process import WorkerProcess

    worker = WorkerProcess(name="suite", concurrency=4)
    yield worker
    worker.stop()


@pytest.fixture
def worker(_session_worker):
    """A real Celery worker (one process, 4 threads: the run pool `switchboard worker` runs)
    shared by the tests that need one."""
    return _started(_session_worker)


@pytest.fixture
def no_worker(_session_worker):
    """No worker runs: the shared one is stopped (the next test that needs it restarts it)."""
    _session_worker.stop()


@pytest.fixture(scope="session")
def _session_checker():
    from tests.worker_process import WorkerProcess

    checker = WorkerProcess(name="checker", concurrency=2, queues=["checks"])
    yield checker
    checker.stop()


@pytest.fixture
def checker(_session_checker):
    """A real checker: a Celery worker on the checks queue only, running the real sandbox."""
    return _started(_session_checker)


@pytest.fixture
def no_checker(_session_checker):
    """No shared checker runs (the next test that needs it restarts it)."""
    _session_checker.stop()


@pytest.fixture
def team(client, session, model_server, worker):
    """A signed-in owner, a workspace and four agents on the scripted model server."""
    from tests.engine_helpers import CHAT, by_system_prompt
    from tests.factories import make_agent, make_model, make_user, make_workspace, sign_in

    user = make_user(session)
    sign_in(client, session, user)
    workspace = make_workspace(session, owner=user)
    model = make_model(session, base_url=model_server.base_url)
    agents = [
        make_agent(session, workspace=workspace, model=model, name=name)
        for name in ("Coder", "Tester", "Reviewer", "Explorer")
    ]
    model_server.on(CHAT, by_system_prompt)
    return workspace, agents
