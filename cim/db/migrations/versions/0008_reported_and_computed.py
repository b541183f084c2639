"""A city's reported value and the value computed from the city model are kept side by side,
and the committee's choice of which counts is kept with its reason.

Before, a computed value replaced the reported one in its row. Rows that hold a computed value
become the computed kind; what they replaced is in the audit log, not here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.add_column(
        "grading_value",
        sa.Column(
            "kind",
            sa.Text(),
            nullable=False,
            server_default="reported",
            comment="reported or computed",
        ),
    )
    op.execute("UPDATE grading_value SET kind = 'computed' WHERE computed IS NOT NULL")
    op.create_check_constraint(
        "grading_value_kind", "grading_value", "kind IN ('reported', 'computed')"
    )
    op.drop_constraint("grading_value_pkey", "grading_value", type_="primary")
    op.create_primary_key(
        "grading_value_pkey", "grading_value", ["round_id", "city_code", "indicator_id", "kind"]
    )
    op.create_table(
        "grading_choice",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("indicator_id", sa.Text(), primary_key=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("chosen_by", sa.Text(), nullable=False),
        sa.Column("chosen_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("counts IN ('reported', 'computed')", name="grading_choice_counts"),
    )


def downgrade() -> None:
    op.drop_table("grading_choice")
    op.execute(
        "DELETE FROM grading_value WHERE kind = 'computed' AND EXISTS (SELECT 1 FROM "
        "grading_value r WHERE r.round_id = grading_value.round_id AND r.city_code = "
        "grading_value.city_code AND r.indicator_id = grading_value.indicator_id "
        "AND r.kind = 'reported')"
    )
    op.drop_constraint("grading_value_pkey", "grading_value", type_="primary")
    op.create_primary_key(
        "grading_value_pkey", "grading_value", ["round_id", "city_code", "indicator_id"]
    )
    op.drop_constraint("grading_value_kind", "grading_value", type_="check")
    op.drop_column("grading_value", "kind")
