"""evaluation suites: suites, their runs and results; a check may carry its tests as text

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('suite',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('prompts', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_suite_created_by_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_suite_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suite')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_suite_workspace_id_name')),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_suite_workspace_id'), 'suite', ['workspace_id'], unique=False)
    op.create_table('suite_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('suite_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('prompts', sa.JSON(), nullable=False),
    sa.Column('agent_ids', sa.JSON(), nullable=False),
    sa.Column('judge_agent_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_suite_run_created_by_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['judge_agent_id'], ['agent.id'], name=op.f('fk_suite_run_judge_agent_id_agent'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['suite_id'], ['suite.id'], name=op.f('fk_suite_run_suite_id_suite'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suite_run')),
    sa.UniqueConstraint('suite_id', 'number', name=op.f('uq_suite_run_suite_id_number')),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_suite_run_suite_id'), 'suite_run', ['suite_id'], unique=False)
    op.create_table('suite_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('suite_run_id', sa.Integer(), nullable=False),
    sa.Column('prompt_index', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('code_check_id', sa.Integer(), nullable=True),
    sa.Column('judge_task_id', sa.Integer(), nullable=True),
    sa.Column('judge_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agent.id'], name=op.f('fk_suite_result_agent_id_agent'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['code_check_id'], ['code_check.id'], name=op.f('fk_suite_result_code_check_id_code_check'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['judge_run_id'], ['run.id'], name=op.f('fk_suite_result_judge_run_id_run'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['judge_task_id'], ['task.id'], name=op.f('fk_suite_result_judge_task_id_task'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_suite_result_run_id_run'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['suite_run_id'], ['suite_run.id'], name=op.f('fk_suite_result_suite_run_id_suite_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_suite_result_task_id_task'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suite_result')),
    sa.UniqueConstraint('suite_run_id', 'prompt_index', 'agent_id', name=op.f('uq_suite_result_suite_run_id_prompt_index_agent_id')),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_suite_result_suite_run_id'), 'suite_result', ['suite_run_id'], unique=False)
    op.create_index(op.f('ix_suite_result_task_id'), 'suite_result', ['task_id'], unique=False)
    op.create_index(op.f('ix_suite_result_run_id'), 'suite_result', ['run_id'], unique=False)
    op.create_index(op.f('ix_suite_result_code_check_id'), 'suite_result', ['code_check_id'], unique=False)
    op.create_index(op.f('ix_suite_result_judge_task_id'), 'suite_result', ['judge_task_id'], unique=False)
    op.create_index(op.f('ix_suite_result_judge_run_id'), 'suite_result', ['judge_run_id'], unique=False)
    with op.batch_alter_table('code_check', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('tests_text', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('code_check', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('tests_text')
    op.drop_table('suite_result')
    op.drop_table('suite_run')
    op.drop_table('suite')
