"""API keys are scoped to rounds: an assessor key names the rounds (and cities) it may write
in; other keys may name rounds too (none: every round).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_key",
        sa.Column(
            "rounds",
            ARRAY(sa.Text()),
            nullable=False,
            server_default="{}",
            comment="the rounds the key may write in; empty: every round (not for assessors)",
        ),
    )


def downgrade() -> None:
    op.drop_column("api_key", "rounds")
