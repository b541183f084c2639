"""Textures: per mesh vertex its texture coordinates, per triangle the texture it shows, and the
texture images of each dataset (stored, so tiles are made from the database alone).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "object_geometry",
        sa.Column("mesh_uvs", sa.LargeBinary(), comment="float32 (u, v) per mesh vertex"),
    )
    op.add_column(
        "object_geometry",
        sa.Column(
            "mesh_textures",
            sa.LargeBinary(),
            comment="int32 per triangle: the dataset's texture index, -1 for none",
        ),
    )
    op.create_table(
        "texture_image",
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("dataset_id", sa.BigInteger(), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True, comment="index in dataset.appearance"),
        sa.Column("source", sa.Text(), nullable=False, comment="the image as the file names it"),
        sa.Column("mime", sa.Text(), nullable=False, comment="image/jpeg or image/png"),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, comment="of the stored bytes"),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["city_code", "dataset_id"],
            ["dataset.city_code", "dataset.id"],
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("texture_image")
    op.drop_column("object_geometry", "mesh_textures")
    op.drop_column("object_geometry", "mesh_uvs")
