"""regular-file bytes in the blob store; garbage collection bookkeeping

Revision ID: 0002_gc
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_gc'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('git_objects') as batch:
        batch.add_column(sa.Column('content_sha256', sa.String(length=64), nullable=True))
        batch.create_index('ix_git_objects_content_sha256', ['content_sha256'])
        batch.create_index('ix_git_objects_lfs_sha256', ['lfs_sha256'])
    with op.batch_alter_table('repo_lfs_objects') as batch:
        batch.add_column(sa.Column('linked_at', sa.Float(), nullable=True))
        batch.create_index('ix_repo_lfs_objects_oid', ['oid'])
    maintenance = op.create_table('maintenance',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.Column('report', sa.String(length=2000), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.bulk_insert(maintenance, [{'name': 'gc'}])


def downgrade() -> None:
    op.drop_table('maintenance')
    with op.batch_alter_table('repo_lfs_objects') as batch:
        batch.drop_index('ix_repo_lfs_objects_oid')
        batch.drop_column('linked_at')
    with op.batch_alter_table('git_objects') as batch:
        batch.drop_index('ix_git_objects_lfs_sha256')
        batch.drop_index('ix_git_objects_content_sha256')
        batch.drop_column('content_sha256')
