"""a message remembers that it is a hand-off (an answer handed on with an instruction)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, no batch rebuild: on SQLite, dropping the message table to rebuild it
    # would cascade into every run.
    op.add_column(
        'message', sa.Column('handoff', sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table('message', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('handoff')
