"""Training inputs: the encoder input and pre-refinement codes of stored experiences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create training_inputs (a new table: existing rows are untouched)."""
    op.create_table(
        'training_inputs',
        sa.Column('uuid', sa.String(32), primary_key=True),
        sa.Column('modality', sa.String(16), nullable=False),
        sa.Column('stamp', sa.Double, nullable=False),
        sa.Column('salience', sa.Float, nullable=False),
        sa.Column('format', sa.String(16), nullable=False),
        sa.Column('width', sa.Integer, nullable=False),
        sa.Column('height', sa.Integer, nullable=False),
        sa.Column('sample_rate', sa.Integer, nullable=False),
        sa.Column('samples', sa.Integer, nullable=False),
        sa.Column('grid_h', sa.Integer, nullable=False),
        sa.Column('grid_w', sa.Integer, nullable=False),
        sa.Column('codebook_size', sa.Integer, nullable=False),
        sa.Column('nbytes', sa.Integer, nullable=False),
        sa.Column('created_at', sa.Double, nullable=False),
        # Blobs last: scanning the small columns stays off SQLite's overflow pages.
        sa.Column('codes_initial', sa.LargeBinary, nullable=True),
        sa.Column('data', sa.LargeBinary, nullable=False),
    )
    op.create_index('ix_training_inputs_modality_stamp', 'training_inputs',
                    ['modality', 'stamp'])


def downgrade() -> None:
    """Drop what upgrade created."""
    op.drop_index('ix_training_inputs_modality_stamp', 'training_inputs')
    op.drop_table('training_inputs')
