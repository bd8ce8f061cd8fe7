"""leases: one replica at a time fetches a mirrored file or evicts the cache

Revision ID: 0012_scalemirror_leases
Revises: 0010_xetcas_dedup
"""

import sqlalchemy as sa
from alembic import op

revision = '0012_scalemirror_leases'
down_revision = '0010_xetcas_dedup'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mirror_leases',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=300), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.Column('streaming', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('mirror_leases')
