"""The constraints that keep data whole, checked against the real database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from app.db import get_engine
from app.models import (
    Agent,
    Membership,
    Message,
    MessageRole,
    Role,
    Run,
    Task,
    User,
    Workspace,
)
from tests.factories import make_user, make_workspace


def make_task_with_messages(session: Session, workspace: Workspace) -> tuple[Task, Message]:
    task = Task(workspace_id=workspace.id, title="t")
    session.add(task)
    session.flush()
    root = Message(task_id=task.id, role=MessageRole.user, content="hello")
    session.add(root)
    session.flush()
    return task, root


def test_membership_is_unique_per_user_and_workspace(session):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    session.add(Membership(workspace_id=workspace.id, user_id=owner.id, role=Role.viewer))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_workspace_slugs_are_unique(session):
    owner = make_user(session)
    first = make_workspace(session, owner=owner, name="Same name")
    second = make_workspace(session, owner=owner, name="Same name")
    assert (first.slug, second.slug) == ("same-name", "same-name-2")
    session.add(Workspace(slug="same-name", name="dup"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_emails_are_unique(session):
    make_user(session, email="ada@example.com")
    session.add(User(email="ada@example.com", display_name="Ada again"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_foreign_keys_are_enforced(session):
    session.add(Membership(workspace_id=999_999, user_id=999_999, role=Role.owner))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_a_message_can_be_the_output_of_only_one_run(session):
    workspace = make_workspace(session, owner=make_user(session))
    task, root = make_task_with_messages(session, workspace)
    answer = Message(task_id=task.id, parent_id=root.id, role=MessageRole.assistant)
    session.add(answer)
    session.flush()
    for _ in range(2):
        session.add(Run(task_id=task.id, input_message_id=root.id, output_message_id=answer.id))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_enumerated_columns_refuse_unknown_values(session):
    owner = make_user(session)
    workspace = make_workspace(session, owner=owner)
    session.add(Task(workspace_id=workspace.id, title="t", status="sideways"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_agent_settings_stay_in_range(session):
    workspace = make_workspace(session, owner=make_user(session))
    session.add(Agent(workspace_id=workspace.id, name="Hot", temperature=5.0))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_deleting_a_workspace_removes_its_tasks_and_messages(session):
    workspace = make_workspace(session, owner=make_user(session))
    task, root = make_task_with_messages(session, workspace)
    session.add(Message(task_id=task.id, parent_id=root.id, role=MessageRole.assistant))
    session.commit()
    session.execute(sa.delete(Workspace).where(Workspace.id == workspace.id))
    session.commit()
    assert session.execute(sa.select(sa.func.count()).select_from(Message)).scalar() == 0
    assert session.execute(sa.select(sa.func.count()).select_from(Task)).scalar() == 0


def test_timestamps_read_back_in_utc(session):
    user = make_user(session)
    session.expire_all()
    reloaded = session.get(User, user.id)
    assert reloaded.created_at.utcoffset().total_seconds() == 0


def test_sqlite_runs_in_wal_mode_with_foreign_keys():
    engine = get_engine()
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas; this run uses " + engine.dialect.name)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
