"""run: a durable cancel request, and the run a pipeline step carries on (unique)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a foreign key or a unique constraint with ALTER TABLE.
    with op.batch_alter_table('run', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('pipeline_after_run_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            op.f('uq_run_pipeline_after_run_id'), ['pipeline_after_run_id']
        )
        batch_op.create_foreign_key(
            op.f('fk_run_pipeline_after_run_id_run'), 'run', ['pipeline_after_run_id'], ['id'],
            ondelete='SET NULL',
        )


def downgrade() -> None:
    with op.batch_alter_table('run', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_constraint(op.f('fk_run_pipeline_after_run_id_run'), type_='foreignkey')
        batch_op.drop_constraint(op.f('uq_run_pipeline_after_run_id'), type_='unique')
        batch_op.drop_column('pipeline_after_run_id')
        batch_op.drop_column('cancel_requested_at')
