"""discussions and pull requests of hosted repos

Revision ID: 0008_mir7_discussions
Revises: 0007_h6b_folded_name
"""

import sqlalchemy as sa
from alembic import op

revision = '0008_mir7_discussions'
down_revision = '0007_h6b_folded_name'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('discussions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repo_pk', sa.Integer(), nullable=False),
    sa.Column('num', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('is_pr', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('author', sa.String(length=96), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('target_branch', sa.String(length=255), nullable=True),
    sa.Column('base_commit', sa.String(length=40), nullable=True),
    sa.Column('merge_commit', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['repo_pk'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('repo_pk', 'num')
    )
    op.create_table('discussion_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('discussion_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('author', sa.String(length=96), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('extra', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['discussion_id'], ['discussions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_discussion_events_discussion_id'), 'discussion_events', ['discussion_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_discussion_events_discussion_id'), table_name='discussion_events')
    op.drop_table('discussion_events')
    op.drop_table('discussions')
