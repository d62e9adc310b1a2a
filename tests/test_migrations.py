"""The first migration builds exactly what the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from app.db import create_db_engine
from app.runtime.migrate import pending_revisions, upgrade_to_head
from tests.conftest import IN_CI, TEST_DATABASE_URL, drop_postgres_database, fresh_postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not TEST_DATABASE_URL.startswith("postgresql"):
        if IN_CI:
            pytest.fail("CI must set SWITCHBOARD_TEST_DATABASE_URL to a PostgreSQL server")
        pytest.skip("set SWITCHBOARD_TEST_DATABASE_URL to a PostgreSQL server to run this")
    name = f"sb_migrations_{os.getpid()}"
    yield fresh_postgres_url(TEST_DATABASE_URL, name)
    drop_postgres_database(TEST_DATABASE_URL, name)


def test_upgrade_head_matches_the_models(empty_database_url):
    upgrade_to_head(empty_database_url)
    engine = create_db_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert not pending_revisions(engine)
        tables = set(sa.inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    upgrade_to_head(url)
    upgrade_to_head(url)
    engine = create_db_engine(url)
    assert not pending_revisions(engine)
    engine.dispose()


def test_rebuilding_sqlite_tables_for_autoincrement_keeps_every_row(tmp_path):
    """0005 rebuilds tables that others refer to: nothing may cascade away, and afterwards a
    deleted row's id is never handed out again."""
    from alembic import command

    from app.runtime.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0004")
    engine = create_db_engine(url)
    now = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO user (id, email, display_name, is_admin, is_active, created_at) VALUES "
            f"(1, 'a@example.com', 'a', 0, 1, '{now}'), (2, 'b@example.com', 'b', 0, 1, '{now}')"
        ))  # fmt: skip
        connection.execute(sa.text(
            "INSERT INTO workspace (id, slug, name, description, created_at) "
            f"VALUES (1, 'w', 'W', '', '{now}')"
        ))  # fmt: skip
        connection.execute(sa.text(
            "INSERT INTO membership (workspace_id, user_id, role, created_at) "
            f"VALUES (1, 1, 'owner', '{now}'), (1, 2, 'viewer', '{now}')"
        ))  # fmt: skip
    engine.dispose()
    upgrade_to_head(url)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM membership")).scalar() == 2
            connection.execute(sa.text("DELETE FROM user WHERE id = 2"))
            connection.execute(sa.text(
                "INSERT INTO user (email, display_name, is_admin, is_active, created_at) "
                f"VALUES ('c@example.com', 'c', 0, 1, '{now}')"
            ))  # fmt: skip
            new_id = connection.execute(sa.text("SELECT max(id) FROM user")).scalar()
            assert new_id == 3
            assert connection.execute(sa.text("SELECT count(*) FROM membership")).scalar() == 1
    finally:
        engine.dispose()


def test_every_sqlite_table_with_an_id_never_reuses_it_after_all_migrations(tmp_path):
    """Later migrations that rebuild a table (batch mode) must keep its AUTOINCREMENT."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_to_head(url)
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            ).all()
    finally:
        engine.dispose()
    with_ids = {name: sql for name, sql in tables if " id INTEGER" in sql or "\tid INTEGER" in sql}
    assert "run" in with_ids and "code_check" in with_ids
    plain = sorted(name for name, sql in with_ids.items() if "AUTOINCREMENT" not in sql)
    assert plain == [], plain


def test_0011_marks_judges_votes_and_lets_them_outlive_their_agent(tmp_path):
    """Votes a judge cast before 0011 become judge votes; afterwards a judge's vote may lose
    its agent (deleted), a person's vote may not lose its person; and back down again."""
    from alembic import command

    from app.runtime.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'votes.db'}"
    command.upgrade(alembic_config(url), "0010")
    engine = create_db_engine(url)
    now = "2026-01-01 00:00:00"
    rows = [
        "INSERT INTO user (id, email, display_name, is_admin, is_active, created_at) "
        f"VALUES (7, 'a@example.com', 'a', 0, 1, '{now}')",
        "INSERT INTO workspace (id, slug, name, description, created_at) "
        f"VALUES (1, 'w', 'W', '', '{now}')",
        "INSERT INTO agent (id, workspace_id, name, role_prompt, temperature, max_tokens, colour, "
        f"created_at) VALUES (9, 1, 'Judge', 'Judge.', 0, 64, '#888888', '{now}')",
        "INSERT INTO task (id, workspace_id, title, brief, status, position, created_at, "
        f"updated_at) VALUES (1, 1, 't', '', 'review', 1, '{now}', '{now}')",
        f"INSERT INTO comparison (id, task_id, blind, created_at) VALUES (1, 1, 0, '{now}')",
        "INSERT INTO vote (id, comparison_id, voter_user_id, judge_agent_id, outcome, created_at) "
        f"VALUES (1, 1, 7, NULL, 'a', '{now}'), (2, 1, NULL, 9, 'b', '{now}')",
    ]
    with engine.begin() as connection:
        for row in rows:
            connection.execute(sa.text(row))
    engine.dispose()
    upgrade_to_head(url)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            marks = connection.execute(sa.text("SELECT id, judge FROM vote ORDER BY id")).all()
            assert [tuple(row) for row in marks] == [(1, 0), (2, 1)]
            connection.execute(sa.text("DELETE FROM agent WHERE id = 9"))  # SET NULL on the vote
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(sa.text("UPDATE vote SET voter_user_id = NULL WHERE id = 1"))
    finally:
        engine.dispose()
    command.downgrade(alembic_config(url), "0010")
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            # The judge's vote that lost its agent cannot exist before 0011: it goes.
            assert connection.execute(sa.text("SELECT id FROM vote")).scalars().all() == [1]
    finally:
        engine.dispose()
