"""repo collaborators and gated-repo access requests

Revision ID: 0004_acl8_access
Revises: 0002_acl8_tokens
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_acl8_access'
down_revision = '0002_acl8_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('repo_collaborators',
    sa.Column('repo_pk', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['repo_pk'], ['repos.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_pk', 'user_id')
    )
    op.create_table('access_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repo_pk', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['repo_pk'], ['repos.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('repo_pk', 'user_id')
    )


def downgrade() -> None:
    op.drop_table('access_requests')
    op.drop_table('repo_collaborators')
