"""Initial schema: experiences, state, tombstones.

Revision ID: 0001
Revises:
Create Date: 2026-11-01
"""
from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables and their indexes."""
    op.create_table(
        'experiences',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('uuid', sa.String(32), nullable=False),
        sa.Column('device_id', sa.String(64), nullable=False),
        sa.Column('session', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('stamp', sa.Double, nullable=False),
        sa.Column('modality', sa.String(16), nullable=False),
        sa.Column('input_seq', sa.BigInteger, nullable=False),
        sa.Column('surprise', sa.Float, nullable=False),
        sa.Column('novelty', sa.Float, nullable=False),
        sa.Column('arousal', sa.Float, nullable=False),
        sa.Column('reward', sa.Float, nullable=False),
        sa.Column('conflict', sa.Float, nullable=False),
        sa.Column('salience', sa.Float, nullable=False),
        sa.Column('threshold', sa.Float, nullable=False),
        sa.Column('metabolic_state', sa.String(16), nullable=False),
        sa.Column('fidelity', sa.String(8), nullable=False),
        sa.Column('grid_h', sa.Integer, nullable=False),
        sa.Column('grid_w', sa.Integer, nullable=False),
        sa.Column('codebook_size', sa.Integer, nullable=False),
        sa.Column('codes', sa.LargeBinary, nullable=True),
        sa.Column('embedding_dim', sa.Integer, nullable=False),
        sa.Column('embedding', sa.LargeBinary, nullable=True),
        sa.Column('preview_format', sa.String(16), nullable=False),
        sa.Column('preview', sa.LargeBinary, nullable=True),
        sa.Column('text', sa.Text, nullable=False),
        sa.Column('pose', sa.Text, nullable=True),
        sa.Column('tags', sa.Text, nullable=False),
        sa.Column('extra', sa.Text, nullable=False),
        sa.Column('context_of', sa.String(32), nullable=True),
        sa.Column('consolidated', sa.Boolean, nullable=False),
        sa.Column('pattern_uuid', sa.String(32), nullable=True),
        sa.Column('created_at', sa.Double, nullable=False),
        sa.UniqueConstraint('uuid', name='uq_experiences_uuid'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_experiences_modality_stamp', 'experiences', ['modality', 'stamp'])
    op.create_index('ix_experiences_salience', 'experiences', ['salience'])
    op.create_index('ix_experiences_modality_salience', 'experiences', ['modality', 'salience'])
    op.create_table(
        'state',
        sa.Column('key', sa.String(128), primary_key=True),
        sa.Column('value', sa.Text, nullable=False),
        sa.Column('updated_at', sa.Double, nullable=False),
        sa.Column('device_id', sa.String(64), nullable=False),
    )
    op.create_table(
        'tombstones',
        sa.Column('uuid', sa.String(32), primary_key=True),
        sa.Column('evicted_at', sa.Double, nullable=False),
    )


def downgrade() -> None:
    """Drop everything upgrade created."""
    op.drop_table('tombstones')
    op.drop_table('state')
    op.drop_index('ix_experiences_modality_salience', 'experiences')
    op.drop_index('ix_experiences_salience', 'experiences')
    op.drop_index('ix_experiences_modality_stamp', 'experiences')
    op.drop_table('experiences')
