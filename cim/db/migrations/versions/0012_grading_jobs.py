"""Background computations of a city's CIM indicators: one row per job, with its progress and
outcome; at most one queued or running job per city of a round.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grading_job",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("round_id", sa.String(64), nullable=False),
        sa.Column("city_code", sa.String(64), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="running"),
        sa.Column("request", JSONB(), nullable=False, comment="what was asked: model, only, ..."),
        sa.Column("progress", JSONB(), nullable=True, comment="step, done, of"),
        sa.Column("result", JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "heartbeat_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name="grading_job_status"),
    )
    op.create_index(
        "grading_job_one_per_city",
        "grading_job",
        ["round_id", "city_code"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("grading_job_one_per_city", table_name="grading_job")
    op.drop_table("grading_job")
