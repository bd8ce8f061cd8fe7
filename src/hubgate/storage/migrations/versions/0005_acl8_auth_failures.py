"""failed authentications per client address

Revision ID: 0005_acl8_auth_failures
Revises: 0004_acl8_access
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_acl8_auth_failures'
down_revision = '0004_acl8_access'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('auth_failures',
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('client')
    )


def downgrade() -> None:
    op.drop_table('auth_failures')
