"""Lookups by id for a user: a task and the user's role in one query, "no such task" for a
task that does not exist and "not found" for one the user may not see."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from app.models import Role, Task
from app.services import NotFound
from app.services.access import task_and_role_for
from tests.factories import make_user, make_workspace


def test_a_task_and_the_role_in_its_workspace_are_read_in_one_statement(session):
    owner, stranger = make_user(session), make_user(session)
    workspace = make_workspace(session, owner=owner)
    task = Task(workspace_id=workspace.id, title="t")
    session.add(task)
    session.commit()
    task_id = task.id
    session.expunge_all()  # nothing from the identity map: the task must be read
    statements: list[str] = []
    engine = session.get_bind()

    def note(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        found, role = task_and_role_for(
            session=session, task_id=task_id, user=owner, min_role=Role.editor
        )
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert (found.id, role) == (task_id, Role.owner)
    assert len(statements) == 1, statements
    with pytest.raises(NotFound, match="Not found"):
        task_and_role_for(session=session, task_id=task_id, user=stranger, min_role=Role.viewer)
    with pytest.raises(NotFound, match="No such task"):
        task_and_role_for(session=session, task_id=task_id + 1, user=owner, min_role=Role.viewer)
