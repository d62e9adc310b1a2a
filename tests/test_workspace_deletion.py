"""Deleting a workspace while something else writes into it: a deadlock is retried, not a 500."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from app.db import get_engine
from app.models import Message, Task, Workspace
from app.services.workspaces import delete_workspace
from tests.factories import make_user, make_workspace


def wait_for_lock_waiters(connection, count: int, deleting: threading.Thread,
                          outcome: dict[str, object], timeout: float = 60) -> None:  # fmt: skip
    """Until ``count`` other backends wait on a lock (a barrier read from PostgreSQL itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not deleting.is_alive():
            raise AssertionError(f"the delete ended before it waited for the writer: {outcome}")
        waiting = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid() AND datname = current_database()"
            )
        ).scalar()
        if waiting >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no backend started waiting for a lock")


def test_a_deadlock_with_a_writer_is_retried(session):
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL breaks deadlocks by aborting a transaction; SQLite has none")
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    task = Task(workspace_id=workspace.id, title="t")
    session.add(task)
    session.flush()
    message = Message(task_id=task.id, role="user", content="q")
    session.add(message)
    session.commit()
    workspace_id, task_id, message_id = workspace.id, task.id, message.id

    outcome: dict[str, object] = {}
    # PostgreSQL looks for a deadlock once, deadlock_timeout after a backend starts to wait. The
    # delete looks after 5 s, long after the writer closed the circle (a busy machine took over
    # the default 1 s); the writer looks after a minute, so the delete is always the one aborted.
    deleter = sa.create_engine(engine.url, connect_args={"options": "-c deadlock_timeout=5s"})

    def delete() -> None:
        with Session(deleter, expire_on_commit=False) as own:
            try:
                delete_workspace(session=own, workspace=own.get(Workspace, workspace_id),
                                 actor=owner)  # fmt: skip
                own.commit()
                outcome["ok"] = True
            except Exception as exc:  # noqa: BLE001 — the test reports what the delete raised
                outcome["error"] = exc

    writer = engine.connect()
    # pg_stat_activity is read once per transaction: each look must be a transaction of its own.
    watcher = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        transaction = writer.begin()
        writer.execute(sa.text("SET LOCAL deadlock_timeout = '60s'"))
        writer.execute(sa.text("UPDATE message SET content = 'w' WHERE id = :id"),
                       {"id": message_id})  # fmt: skip
        deleting = threading.Thread(target=delete)
        deleting.start()
        # the cascade waits for the writer's message row
        wait_for_lock_waiters(watcher, 1, deleting, outcome)
        # Now the writer wants the task row the cascade holds: a deadlock; the delete loses.
        writer.execute(sa.text("UPDATE task SET title = 'w' WHERE id = :id"), {"id": task_id})
        # the delete, retried, waits for the writer again
        wait_for_lock_waiters(watcher, 1, deleting, outcome)
        transaction.commit()
        deleting.join(60)
    finally:
        writer.close()
        watcher.close()
        deleter.dispose()
    assert outcome == {"ok": True}, outcome
    with Session(engine) as check:
        assert check.get(Workspace, workspace_id) is None
