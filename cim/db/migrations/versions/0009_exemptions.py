"""Exemptions: why a required value of a city may be missing when its round is submitted or made
final (a round cannot be, otherwise), as the committee records them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grading_exemption",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column(
            "indicator_id",
            sa.Text(),
            primary_key=True,
            comment="empty: every indicator of the city",
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column(
            "granted_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("grading_exemption")
