"""Point clouds: each point's whole source record (e.g. a LAS point record: position as stored,
intensity, return numbers, classification, GPS time, colour), packed, beside the geometry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "object_geometry",
        sa.Column(
            "point_data",
            sa.LargeBinary(),
            comment="per point, the source record packed; its layout is structure.point_data",
        ),
    )
    op.execute("ALTER TABLE object_geometry ALTER COLUMN point_data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_column("object_geometry", "point_data")
