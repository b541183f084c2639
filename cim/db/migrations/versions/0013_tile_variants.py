"""Kept tiles know what made them, and each city's property statistics are kept.

- `tile_cache.variant` (in the primary key): a digest of the settings that change a content's
  bytes (CIM_TILES_MESHOPT for GLB), so a process with other settings neither serves nor
  overwrites another's tiles. `tile_cache.made_with`: a digest of the code that wrote the tile
  and of its city's property schema; a tile made with another is made again in place. Tiles
  kept before this revision were made with unknown settings and a per-tile schema: all go.
- `tile_property_stats`: what each dataset's objects hold in their attributes (kinds of values,
  ranges), measured once per dataset; the tiler merges them into its city's one schema.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM tile_cache")
    op.add_column(
        "tile_cache",
        sa.Column(
            "variant",
            sa.Text(),
            nullable=False,
            server_default="",
            comment="digest of the settings that change the content's bytes",
        ),
    )
    op.add_column(
        "tile_cache",
        sa.Column(
            "made_with",
            sa.Text(),
            nullable=False,
            server_default="",
            comment="digest of the code and the city's property schema that made it",
        ),
    )
    op.drop_constraint("tile_cache_pkey", "tile_cache", type_="primary")
    op.create_primary_key(
        "tile_cache_pkey",
        "tile_cache",
        ["city_code", "tile_level", "tile_x", "tile_y", "format", "variant"],
    )
    op.create_table(
        "tile_property_stats",
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("dataset_id", sa.BigInteger(), primary_key=True),
        sa.Column("stats", JSONB(), nullable=False, comment="objects, and each attribute's kinds"),
        sa.Column("made_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        # no key to dataset: measuring a dataset must never wait for its deletion's lock
        sa.ForeignKeyConstraint(["city_code"], ["city.code"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("tile_property_stats")
    op.execute("DELETE FROM tile_cache")
    op.drop_constraint("tile_cache_pkey", "tile_cache", type_="primary")
    op.create_primary_key(
        "tile_cache_pkey", "tile_cache", ["city_code", "tile_level", "tile_x", "tile_y", "format"]
    )
    op.drop_column("tile_cache", "made_with")
    op.drop_column("tile_cache", "variant")
