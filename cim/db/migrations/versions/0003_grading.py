"""Grading: assessment rounds, cities, indicator values with evidence, API keys, audit log.

The audit log is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE on it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "grading_round",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("catalogue", JSONB(), nullable=False),
        sa.Column("policy", JSONB(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="draft"),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("results", JSONB(), comment="frozen when final"),
        sa.Column("results_sha256", sa.String(64)),
        sa.CheckConstraint(
            "status IN ('draft', 'submitted', 'reviewed', 'final')", name="grading_round_status"
        ),
    )
    op.create_table(
        "grading_city",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name_zh", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=False),
        sa.Column("previous_stars", sa.SmallInteger()),
        sa.Column("previous_total", sa.Float()),
        sa.ForeignKeyConstraint(["round_id"], ["grading_round.id"], ondelete="CASCADE"),
    )
    op.create_table(
        "grading_evidence",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.Text(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.ForeignKeyConstraint(["round_id"], ["grading_round.id"], ondelete="CASCADE"),
    )
    op.create_table(
        "grading_value",
        sa.Column("round_id", sa.String(64), primary_key=True),
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("indicator_id", sa.Text(), primary_key=True),
        sa.Column("value", JSONB(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=False, server_default=""),
        sa.Column("source", sa.Text(), nullable=False, server_default=""),
        sa.Column("link", sa.Text()),
        sa.Column("note", sa.Text()),
        sa.Column("evidence_sha256", sa.String(64)),
        sa.Column("computed", JSONB(), comment="the query and parameters of a CIM-computed value"),
        sa.Column("entered_by", sa.Text(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
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
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("cities", ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "role IN ('viewer', 'assessor', 'reviewer', 'admin')", name="api_key_role"
        ),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("round_id", sa.String(64)),
        sa.Column("target", sa.Text()),
        sa.Column("old", JSONB()),
        sa.Column("new", JSONB()),
    )
    op.create_index("audit_log_round_ix", "audit_log", ["round_id", "id"])
    op.execute("""
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """)
    op.execute("""
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """)


def downgrade() -> None:
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_table("api_key")
    op.drop_table("grading_value")
    op.drop_table("grading_evidence")
    op.drop_table("grading_city")
    op.drop_table("grading_round")
