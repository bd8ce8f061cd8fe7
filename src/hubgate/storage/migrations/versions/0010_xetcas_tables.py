"""Xet storage: xorbs, files, the xorbs each file uses, and the files each repo registered

Revision ID: 0009_xetcas_tables
Revises: 0008_mir7_discussions
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_xetcas_tables'
down_revision = '0008_mir7_discussions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('xet_xorbs',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('unpacked', sa.BigInteger(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('chunk_index', sa.LargeBinary(), nullable=False),
    sa.Column('touched_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_index(op.f('ix_xet_xorbs_blob_sha256'), 'xet_xorbs', ['blob_sha256'], unique=False)
    op.create_table('xet_files',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('terms', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('xet_file_xorbs',
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['file_hash'], ['xet_files.hash'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash'], ),
    sa.PrimaryKeyConstraint('file_hash', 'xorb_hash')
    )
    op.create_index(op.f('ix_xet_file_xorbs_xorb_hash'), 'xet_file_xorbs', ['xorb_hash'], unique=False)
    op.create_table('xet_repo_files',
    sa.Column('repo_pk', sa.Integer(), nullable=False),
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('linked_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['file_hash'], ['xet_files.hash'], ),
    sa.ForeignKeyConstraint(['repo_pk'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_pk', 'file_hash')
    )
    op.create_index(op.f('ix_xet_repo_files_file_hash'), 'xet_repo_files', ['file_hash'], unique=False)
    op.create_index(op.f('ix_xet_repo_files_sha256'), 'xet_repo_files', ['sha256'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_xet_repo_files_sha256'), table_name='xet_repo_files')
    op.drop_index(op.f('ix_xet_repo_files_file_hash'), table_name='xet_repo_files')
    op.drop_table('xet_repo_files')
    op.drop_index(op.f('ix_xet_file_xorbs_xorb_hash'), table_name='xet_file_xorbs')
    op.drop_table('xet_file_xorbs')
    op.drop_table('xet_files')
    op.drop_index(op.f('ix_xet_xorbs_blob_sha256'), table_name='xet_xorbs')
    op.drop_table('xet_xorbs')
