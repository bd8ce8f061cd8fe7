"""token scopes (fine-grained grants) and last use

Revision ID: 0002_acl8_tokens
Revises: 0002_gc
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_acl8_tokens'
down_revision = '0002_gc'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tokens') as batch:
        batch.add_column(sa.Column('grants', sa.Text(), nullable=True))
        batch.add_column(sa.Column('last_used_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('last_used_from', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tokens') as batch:
        batch.drop_column('last_used_from')
        batch.drop_column('last_used_at')
        batch.drop_column('grants')
