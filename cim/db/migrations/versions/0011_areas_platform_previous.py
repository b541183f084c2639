"""Model indicators over a declared area, the CIM platform's function groups, and the link to
a round's previous round.

- `grading_area`: the area a city's area-based indicators are computed over (its administrative
  or built-up boundary), from a file the committee supplies; the file is kept as evidence under
  its SHA-256.
- `grading_platform_function`: which of the seven function groups of a city-level CIM platform
  (CJJ/T 315-2022 §4.3.2) the city's platform offers, each with its evidence.
- `grading_round.previous_round_id`: the round a committee compares this one with.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grading_area",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False, comment="administrative or built_up"),
        sa.Column("name", sa.Text(), nullable=False, server_default=""),
        sa.Column(
            "geom",
            Geometry("MULTIPOLYGON", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("area_km2", sa.Float(), nullable=False, comment="on the WGS 84 ellipsoid"),
        sa.Column("source_crs", sa.Text(), nullable=False, comment="the file's CRS"),
        sa.Column("features", sa.Integer(), nullable=False),
        sa.Column("evidence_sha256", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("declared_by", sa.Text(), nullable=False),
        sa.Column(
            "declared_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["round_id", "evidence_sha256"],
            ["grading_evidence.round_id", "grading_evidence.sha256"],
        ),
        sa.CheckConstraint("kind IN ('administrative', 'built_up')", name="grading_area_kind"),
    )
    op.create_table(
        "grading_platform_function",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("function_group", sa.Text(), primary_key=True),
        sa.Column("evidence_sha256", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("declared_by", sa.Text(), nullable=False),
        sa.Column(
            "declared_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["round_id", "evidence_sha256"],
            ["grading_evidence.round_id", "grading_evidence.sha256"],
        ),
    )
    op.add_column(
        "grading_round",
        sa.Column(
            "previous_round_id",
            sa.String(64),
            nullable=True,
            comment="the round this one is compared with, linked by the committee",
        ),
    )
    op.create_foreign_key(
        "grading_round_previous_round_id_fkey",
        "grading_round",
        "grading_round",
        ["previous_round_id"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_constraint("grading_round_previous_round_id_fkey", "grading_round")
    op.drop_column("grading_round", "previous_round_id")
    op.drop_table("grading_platform_function")
    op.drop_table("grading_area")
