"""checks: code from answers run in the sandbox; pipelines gain a check step

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('code_check',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('code_message_id', sa.Integer(), nullable=False),
    sa.Column('test_message_id', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('tests_passed', sa.Integer(), nullable=True),
    sa.Column('tests_failed', sa.Integer(), nullable=True),
    sa.Column('tests_errors', sa.Integer(), nullable=True),
    sa.Column('failures', sa.JSON(), nullable=False),
    sa.Column('output', sa.Text(), nullable=False),
    sa.Column('output_truncated', sa.Boolean(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=True),
    sa.Column('pipeline_round', sa.Integer(), nullable=True),
    sa.Column('pipeline_step', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'passed', 'failed', 'error', 'unavailable', 'cancelled')", name=op.f('ck_code_check_status_valid')),
    sa.ForeignKeyConstraint(['code_message_id'], ['message.id'], name=op.f('fk_code_check_code_message_id_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_code_check_created_by_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_code_check_message_id_message'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipeline.id'], name=op.f('fk_code_check_pipeline_id_pipeline'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_code_check_task_id_task'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['test_message_id'], ['message.id'], name=op.f('fk_code_check_test_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_code_check')),
    sa.UniqueConstraint('message_id', name=op.f('uq_code_check_message_id')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_code_check_status_queued_at', 'code_check', ['status', 'queued_at'], unique=False)
    op.create_index(op.f('ix_code_check_task_id'), 'code_check', ['task_id'], unique=False)
    op.create_index(op.f('ix_code_check_code_message_id'), 'code_check', ['code_message_id'], unique=False)
    op.create_index(op.f('ix_code_check_test_message_id'), 'code_check', ['test_message_id'], unique=False)
    with op.batch_alter_table('pipeline', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(
            sa.Column('run_checks', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                'stop_when_checks_pass', sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('pipeline', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('stop_when_checks_pass')
        batch_op.drop_column('run_checks')
    op.drop_index(op.f('ix_code_check_test_message_id'), table_name='code_check')
    op.drop_index(op.f('ix_code_check_code_message_id'), table_name='code_check')
    op.drop_index(op.f('ix_code_check_task_id'), table_name='code_check')
    op.drop_index('ix_code_check_status_queued_at', table_name='code_check')
    op.drop_table('code_check')
