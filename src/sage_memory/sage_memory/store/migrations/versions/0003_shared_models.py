"""Shared model versions: encoder versions a host promoted, for the other hosts to adopt; and
a partial index of pattern rows, which another host's outbox reads back by id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create shared_models and the pattern index (existing rows are untouched)."""
    op.create_index('ix_experiences_patterns', 'experiences', ['id'],
                    sqlite_where=sa.text("kind = 'pattern'"),
                    postgresql_where=sa.text("kind = 'pattern'"))
    op.create_table(
        'shared_models',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('device_id', sa.String(64), nullable=False),
        sa.Column('modality', sa.String(16), nullable=False),
        sa.Column('version', sa.String(16), nullable=False),
        sa.Column('info', sa.Text, nullable=False),
        sa.Column('sha256', sa.String(64), nullable=False),
        sa.Column('nbytes', sa.Integer, nullable=False),
        sa.Column('created_at', sa.Double, nullable=False),
        sa.Column('archive', sa.LargeBinary, nullable=False),
        sa.UniqueConstraint('device_id', 'modality', 'version',
                            name='uq_shared_models_origin'),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop what upgrade created."""
    op.drop_table('shared_models')
    op.drop_index('ix_experiences_patterns', 'experiences')
