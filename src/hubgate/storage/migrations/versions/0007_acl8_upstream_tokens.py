"""users' own upstream tokens, encrypted

Revision ID: 0006_acl8_upstream_tokens
Revises: 0006_mir7_names
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_acl8_upstream_tokens'
down_revision = '0006_mir7_names'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('upstream_tokens',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('upstream', sa.String(length=100), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'upstream')
    )


def downgrade() -> None:
    op.drop_table('upstream_tokens')
