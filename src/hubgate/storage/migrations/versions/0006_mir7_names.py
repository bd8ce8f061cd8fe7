"""repo redirects after a move, mirror aliases

Revision ID: 0006_mir7_names
Revises: 0005_acl8_auth_failures
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_mir7_names'
down_revision = '0005_acl8_auth_failures'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('repo_redirects',
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('old_id', sa.String(length=200), nullable=False),
    sa.Column('repo_pk', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['repo_pk'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('type', 'old_id')
    )
    op.create_index(op.f('ix_repo_redirects_repo_pk'), 'repo_redirects', ['repo_pk'], unique=False)
    op.create_table('mirror_aliases',
    sa.Column('repo_type', sa.String(length=16), nullable=False),
    sa.Column('asked', sa.String(length=200), nullable=False),
    sa.Column('canonical', sa.String(length=200), nullable=False),
    sa.Column('fetched_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('repo_type', 'asked')
    )


def downgrade() -> None:
    op.drop_table('mirror_aliases')
    op.drop_index(op.f('ix_repo_redirects_repo_pk'), table_name='repo_redirects')
    op.drop_table('repo_redirects')
