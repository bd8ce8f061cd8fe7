"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('counters',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('git_objects',
    sa.Column('sha1', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('lfs_sha256', sa.String(length=64), nullable=True),
    sa.Column('lfs_size', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('sha1')
    )
    op.create_table('mirror_commits',
    sa.Column('repo_type', sa.String(length=16), nullable=False),
    sa.Column('repo_id', sa.String(length=200), nullable=False),
    sa.Column('commit', sa.String(length=40), nullable=False),
    sa.Column('info', sa.LargeBinary(), nullable=False),
    sa.Column('tree', sa.LargeBinary(), nullable=True),
    sa.Column('fetched_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('repo_type', 'repo_id', 'commit')
    )
    op.create_table('mirror_files',
    sa.Column('oid', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('upstream', sa.String(length=100), nullable=False),
    sa.Column('last_access', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('oid')
    )
    with op.batch_alter_table('mirror_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_files_last_access'), ['last_access'], unique=False)
        batch_op.create_index(batch_op.f('ix_mirror_files_sha256'), ['sha256'], unique=False)

    op.create_table('mirror_health',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('last_success', sa.Float(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('last_error_at', sa.Float(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('mirror_negative',
    sa.Column('key', sa.String(length=600), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('mirror_revisions',
    sa.Column('repo_type', sa.String(length=16), nullable=False),
    sa.Column('repo_id', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.String(length=255), nullable=False),
    sa.Column('commit', sa.String(length=40), nullable=False),
    sa.Column('fetched_at', sa.Float(), nullable=False),
    sa.Column('upstream', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('repo_type', 'repo_id', 'revision')
    )
    op.create_table('orgs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=96), nullable=False),
    sa.Column('fullname', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('repos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('namespace', sa.String(length=96), nullable=False),
    sa.Column('name', sa.String(length=96), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('gated', sa.String(length=16), nullable=True),
    sa.Column('sdk', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('type', 'namespace', 'name')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=96), nullable=False),
    sa.Column('fullname', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('memberships',
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('org_id', 'user_id')
    )
    op.create_table('refs',
    sa.Column('repo_pk', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('target', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['repo_pk'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_pk', 'name')
    )
    op.create_table('repo_lfs_objects',
    sa.Column('repo_pk', sa.Integer(), nullable=False),
    sa.Column('oid', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['repo_pk'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_pk', 'oid')
    )
    op.create_table('tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )


def downgrade() -> None:
    op.drop_table('tokens')
    op.drop_table('repo_lfs_objects')
    op.drop_table('refs')
    op.drop_table('memberships')
    op.drop_table('users')
    op.drop_table('repos')
    op.drop_table('orgs')
    op.drop_table('mirror_revisions')
    op.drop_table('mirror_negative')
    op.drop_table('mirror_health')
    with op.batch_alter_table('mirror_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_files_sha256'))
        batch_op.drop_index(batch_op.f('ix_mirror_files_last_access'))

    op.drop_table('mirror_files')
    op.drop_table('mirror_commits')
    op.drop_table('git_objects')
    op.drop_table('counters')
