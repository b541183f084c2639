"""Each object's estimated tile content bytes, kept with it (cim.tiling.object_weights): a city's
tiles are weighed, to find the over-full ones (tiles.split), by a GROUP BY over `city_object`
alone. Joining every object's drawn geometry for its mesh sizes took 3 to 4 s of a 1 M-building
city's seeding, and as long again on every new generation of the tileset.

Objects ingested before this revision get the same figures from their stored geometry.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


# the weights of objects ingested before this revision, as cim.tiling.object_weights gives them
# at ingest: 32 bytes per float32 vertex (12 stored) and the triangles' bytes; else a point
# cloud's 28 bytes per point it says it holds; else the size of the geometry's EWKB
BACKFILL = """
    UPDATE city_object o SET
        mesh_weight = CASE WHEN g.mesh_vertices IS NOT NULL
            THEN octet_length(g.mesh_vertices) / 12 * 32
                 + coalesce(octet_length(g.mesh_triangles), 0) END,
        plain_weight = CASE WHEN g.mesh_vertices IS NULL THEN
            CASE WHEN o.type = 'PointCloud'
                      AND jsonb_typeof(o.attributes -> 'points') = 'number'
                      AND (o.attributes ->> 'points') ~ '^[0-9]+$'
                 THEN (o.attributes ->> 'points')::bigint * 28
                 ELSE coalesce(octet_length(ST_AsEWKB(g.geom)), 0) END END
    FROM object_geometry g
    WHERE g.city_code = o.city_code AND g.object_id = o.id AND g.idx = o.display_idx"""


def upgrade() -> None:
    op.add_column(
        "city_object",
        sa.Column(
            "mesh_weight",
            sa.BigInteger(),
            comment="estimated tile content bytes of the mesh it draws (cim.tiling)",
        ),
    )
    op.add_column(
        "city_object",
        sa.Column(
            "plain_weight",
            sa.BigInteger(),
            comment="estimated tile content bytes of the points or lines it draws",
        ),
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_column("city_object", "plain_weight")
    op.drop_column("city_object", "mesh_weight")
