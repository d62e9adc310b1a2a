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


def wait_for_lock_waiters(connection, count: int, timeout: float = 30) -> None:
    """Until ``count`` other backends wait on a lock (a barrier read from PostgreSQL itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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

    def delete() -> None:
        with Session(engine, expire_on_commit=False) as own:
            try:
                delete_workspace(session=own, workspace=own.get(Workspace, workspace_id),
                                 actor=owner)  # fmt: skip
                own.commit()
                outcome["ok"] = True
            except Exception as exc:  # noqa: BLE001 — the test reports what the delete raised
                outcome["error"] = exc

    writer = engine.connect()
    watcher = engine.connect()
    try:
        transaction = writer.begin()
        # The writer's own deadlock check waits longer, so the delete is the one aborted.
        writer.execute(sa.text("SET LOCAL deadlock_timeout = '5s'"))
        writer.execute(sa.text("UPDATE message SET content = 'w' WHERE id = :id"),
                       {"id": message_id})  # fmt: skip
        deleting = threading.Thread(target=delete)
        deleting.start()
        wait_for_lock_waiters(watcher, 1)  # the cascade waits for the writer's message row
        # Now the writer wants the task row the cascade holds: a deadlock; the delete loses.
        writer.execute(sa.text("UPDATE task SET title = 'w' WHERE id = :id"), {"id": task_id})
        wait_for_lock_waiters(watcher, 1)  # the delete, retried, waits for the writer again
        transaction.commit()
        deleting.join(60)
    finally:
        writer.close()
        watcher.close()
    assert outcome == {"ok": True}, outcome
    with Session(engine) as check:
        assert check.get(Workspace, workspace_id) is None
