"""Xet global deduplication: the chunks clients ask about, and the xorbs that hold them

Revision ID: 0010_xetcas_dedup
Revises: 0009_xetcas_tables
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_xetcas_dedup'
down_revision = '0009_xetcas_tables'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('xet_dedup_chunks',
    sa.Column('chunk_hash', sa.String(length=64), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chunk_hash', 'xorb_hash')
    )
    op.create_index(op.f('ix_xet_dedup_chunks_xorb_hash'), 'xet_dedup_chunks', ['xorb_hash'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_xet_dedup_chunks_xorb_hash'), table_name='xet_dedup_chunks')
    op.drop_table('xet_dedup_chunks')
