"""prompt formats per model; loop guard and worked examples per agent

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('model', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('prompt_format', sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column('detected_prompt_format', sa.String(length=16), nullable=True)
        )
    with op.batch_alter_table('agent', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('examples', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(
            sa.Column('loop_guard', sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('agent', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('loop_guard')
        batch_op.drop_column('examples')
    with op.batch_alter_table('model', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('detected_prompt_format')
        batch_op.drop_column('prompt_format')
