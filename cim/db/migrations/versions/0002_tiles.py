"""3D Tiles: each object's tile in the global quadtree, its size, the geometry to draw, default
colours per triangle, and the tile cache.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("city_object", sa.Column("tile_level", sa.SmallInteger()))
    op.add_column("city_object", sa.Column("tile_x", sa.Integer()))
    op.add_column("city_object", sa.Column("tile_y", sa.Integer()))
    op.add_column("city_object", sa.Column("size", sa.Float(), comment="largest extent, metres"))
    op.add_column(
        "city_object",
        sa.Column("display_idx", sa.SmallInteger(), comment="the geometry 3D views draw"),
    )
    op.add_column(
        "object_geometry", sa.Column("mesh_colours", sa.LargeBinary(), comment="RGB per triangle")
    )
    # objects ingested before this revision: draw their highest LoD that has a mesh (their tile
    # keys are filled in by the tiler on first use, with the same code as at ingest)
    op.execute("""
        UPDATE city_object o SET display_idx = (
            SELECT g.idx FROM object_geometry g
            WHERE g.city_code = o.city_code AND g.object_id = o.id
            ORDER BY (g.mesh_vertices IS NOT NULL) DESC, g.lod DESC NULLS LAST, g.idx LIMIT 1)
    """)
    op.create_index(
        "city_object_tile_ix", "city_object", ["city_code", "tile_level", "tile_x", "tile_y"]
    )
    op.create_table(
        "tile_cache",
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("tile_level", sa.SmallInteger(), primary_key=True),
        sa.Column("tile_x", sa.Integer(), primary_key=True),
        sa.Column("tile_y", sa.Integer(), primary_key=True),
        sa.Column("format", sa.Text(), primary_key=True, comment="glb or b3dm"),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.ForeignKeyConstraint(["city_code"], ["city.code"], ondelete="CASCADE"),
    )
    # GLB is binary float data: compressing it on every insert costs time and saves little
    op.execute("ALTER TABLE tile_cache ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("tile_cache")
    op.drop_index("city_object_tile_ix", "city_object")
    op.drop_column("object_geometry", "mesh_colours")
    for column in ("display_idx", "size", "tile_y", "tile_x", "tile_level"):
        op.drop_column("city_object", column)
