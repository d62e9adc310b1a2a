"""ids are never reused (SQLite AUTOINCREMENT); removals of members are remembered

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 09:40:00

Without AUTOINCREMENT SQLite gives a new row the id of the newest deleted one, and live
streams (Redis keys) and links are keyed by ids. SQLite cannot add AUTOINCREMENT to a table,
so each table with an ``id`` key is rebuilt (batch mode; migrations/env.py turns foreign keys
off around migrations so that dropping the old table cascades nothing). PostgreSQL's
sequences never hand out an id twice: nothing to do there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        if inspector.get_pk_constraint(table)["constrained_columns"] != ["id"]:
            continue
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)
    op.create_table(
        'member_removal',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('workspace_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['user.id'], name=op.f('fk_member_removal_user_id_user'),
            ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['workspace_id'], ['workspace.id'],
            name=op.f('fk_member_removal_workspace_id_workspace'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_member_removal')),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('member_removal') as batch_op:
        batch_op.create_index(batch_op.f('ix_member_removal_user_id'), ['user_id'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_member_removal_workspace_id'), ['workspace_id'], unique=False
        )


def downgrade() -> None:
    op.drop_table('member_removal')
    _rebuild(False)
