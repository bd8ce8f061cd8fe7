"""index repos by type and lower-cased namespace and name

Revision ID: 0007_h6b_folded_name
Revises: 0006_acl8_upstream_tokens
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_h6b_folded_name'
down_revision = '0006_acl8_upstream_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_repos_folded_name', 'repos', ['type', sa.text('lower(namespace)'), sa.text('lower(name)')],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_repos_folded_name', table_name='repos')
