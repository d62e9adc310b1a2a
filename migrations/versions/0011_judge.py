"""judge agents' votes with a reason, the judgements asked of them; tags on tasks

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 12:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('vote', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(
            sa.Column('judge', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=True))
    op.execute(sa.text('UPDATE vote SET judge = TRUE WHERE judge_agent_id IS NOT NULL'))
    # A judge's vote must survive the deletion of its agent (judge_agent_id is SET NULL then).
    with op.batch_alter_table('vote', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_constraint(op.f('ck_vote_voter_present'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_vote_voter_present'), 'judge OR voter_user_id IS NOT NULL'
        )
        batch_op.create_unique_constraint(
            op.f('uq_vote_comparison_id_judge_agent_id'), ['comparison_id', 'judge_agent_id']
        )
    op.create_table('judgement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('vote_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'voted', 'unreadable', 'failed')", name=op.f('ck_judgement_status_valid')),
    sa.ForeignKeyConstraint(['agent_id'], ['agent.id'], name=op.f('fk_judgement_agent_id_agent'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparison.id'], name=op.f('fk_judgement_comparison_id_comparison'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_judgement_created_by_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_judgement_run_id_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vote_id'], ['vote.id'], name=op.f('fk_judgement_vote_id_vote'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_judgement')),
    sa.UniqueConstraint('run_id', name=op.f('uq_judgement_run_id')),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_judgement_comparison_id'), 'judgement', ['comparison_id'], unique=False)
    op.create_table('task_tag',
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_task_tag_task_id_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', 'tag', name=op.f('pk_task_tag')),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_task_tag_tag'), 'task_tag', ['tag'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_task_tag_tag'), table_name='task_tag')
    op.drop_table('task_tag')
    op.drop_index(op.f('ix_judgement_comparison_id'), table_name='judgement')
    op.drop_table('judgement')
    op.execute(sa.text('DELETE FROM vote WHERE voter_user_id IS NULL AND judge_agent_id IS NULL'))
    with op.batch_alter_table('vote', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_constraint(op.f('uq_vote_comparison_id_judge_agent_id'), type_='unique')
        batch_op.drop_constraint(op.f('ck_vote_voter_present'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_vote_voter_present'),
            'voter_user_id IS NOT NULL OR judge_agent_id IS NOT NULL',
        )
        batch_op.drop_column('reason')
        batch_op.drop_column('judge')
