"""Xet plain copies: files rebuilt for plain-HTTP and git-lfs clients, kept as blobs (a capped cache)

Revision ID: 0013_xetdl_plain_copies
Revises: 0012_scalemirror_leases
"""

import sqlalchemy as sa
from alembic import op

revision = '0013_xetdl_plain_copies'
down_revision = '0012_scalemirror_leases'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('xet_plain_copies',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('ready', sa.Boolean(), nullable=False),
    sa.Column('last_access', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['file_hash'], ['xet_files.hash'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_index(op.f('ix_xet_plain_copies_file_hash'), 'xet_plain_copies', ['file_hash'], unique=False)
    op.create_index(op.f('ix_xet_plain_copies_last_access'), 'xet_plain_copies', ['last_access'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_xet_plain_copies_last_access'), table_name='xet_plain_copies')
    op.drop_index(op.f('ix_xet_plain_copies_file_hash'), table_name='xet_plain_copies')
    op.drop_table('xet_plain_copies')
