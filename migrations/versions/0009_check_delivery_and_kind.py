"""checks: when a check's message was sent; a check's summary message marked as one

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no constraint): SQLite needs no table rebuild for these, and
    # rebuilding message would cascade its DROP TABLE into every run.
    op.add_column('code_check', sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('message', sa.Column('kind', sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE message SET kind = 'check' WHERE id IN "
        "(SELECT message_id FROM code_check WHERE message_id IS NOT NULL)"
    )
    # A check already sent counts as sent now: the sweeper's lost-message rule waits from here.
    op.execute("UPDATE code_check SET dispatched_at = queued_at WHERE status IN ('queued', 'running')")


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+, PostgreSQL): no rebuild, nothing cascades.
    op.execute('ALTER TABLE message DROP COLUMN kind')
    op.execute('ALTER TABLE code_check DROP COLUMN dispatched_at')
