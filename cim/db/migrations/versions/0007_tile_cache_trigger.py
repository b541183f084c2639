"""The database keeps the tile cache right, and every object has its tile.

- When a dataset is deleted (before its objects go) or marked ready (all its objects in), a
  trigger forgets the cached tiles its objects fall in. So every writer of datasets (the ingest,
  `cim datasets delete`, an operator's SQL) leaves the cache right without touching it, and only
  the tiler (tiles/service.py) writes `tile_cache`.
- A tile made while a dataset of its city is changing must not outlive that change in the cache:
  the trigger locks the city's row (FOR NO KEY UPDATE, as the ingest's upsert of the city does)
  until its transaction ends, and the tiler caches a tile only when it can hold that row FOR
  SHARE while making it. The trigger so waits for tiles being made, then forgets them; a tile
  made during the change is served but not kept.
- Objects ingested before revision 0002 got no tile; they get one now, by the same code as at
  ingest (cim.tiling), where the tiler used to fill them in on first use.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import numpy as np
import sqlalchemy as sa
from alembic import op

from cim.tiling import tile_keys

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # OR REPLACE and IF EXISTS: a restore of an older dump (pg_restore --clean) drops the table
    # and its triggers but leaves the function, and then comes back through this revision
    op.execute("""
        CREATE OR REPLACE FUNCTION tile_cache_forget_dataset() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE d dataset;
        BEGIN
            IF TG_OP = 'DELETE' THEN d := OLD; ELSE d := NEW; END IF;
            PERFORM 1 FROM city WHERE code = d.city_code FOR NO KEY UPDATE;
            DELETE FROM tile_cache t USING (
                SELECT DISTINCT tile_level, tile_x, tile_y FROM city_object
                WHERE city_code = d.city_code AND dataset_id = d.id) k
            WHERE t.city_code = d.city_code AND t.tile_level = k.tile_level
              AND t.tile_x = k.tile_x AND t.tile_y = k.tile_y;
            RETURN d;
        END $$""")
    op.execute("DROP TRIGGER IF EXISTS dataset_deleted_forget_tiles ON dataset")
    op.execute("""
        CREATE TRIGGER dataset_deleted_forget_tiles BEFORE DELETE ON dataset
        FOR EACH ROW EXECUTE FUNCTION tile_cache_forget_dataset()""")
    op.execute("DROP TRIGGER IF EXISTS dataset_ready_forget_tiles ON dataset")
    op.execute("""
        CREATE TRIGGER dataset_ready_forget_tiles AFTER UPDATE OF status ON dataset
        FOR EACH ROW WHEN (NEW.status = 'ready') EXECUTE FUNCTION tile_cache_forget_dataset()""")
    _fill_tile_keys(op.get_bind())


def _fill_tile_keys(conn: sa.Connection) -> None:
    """Give a tile to every object that has a box but no tile yet, read in one pass and
    written 10,000 at a time."""
    rows = conn.execute(
        sa.text(
            "SELECT city_code, id, ST_XMin(bbox), ST_YMin(bbox), z_min, ST_XMax(bbox),"
            " ST_YMax(bbox), z_max FROM city_object"
            " WHERE tile_level IS NULL AND bbox IS NOT NULL"
        ).execution_options(yield_per=10_000)  # a server-side cursor, read in parts
    )
    update = sa.text(
        "UPDATE city_object SET tile_level = :l, tile_x = :x, tile_y = :y, size = :s"
        " WHERE city_code = :c AND id = :id"
    )
    for part in rows.partitions():
        box = np.array([r[2:] for r in part], dtype=np.float64)
        level, x, y, size = tile_keys(box[:, :3], box[:, 3:])
        conn.execute(
            update,
            [
                {"c": r[0], "id": r[1], "l": int(a), "x": int(b), "y": int(c), "s": float(d)}
                for r, a, b, c, d in zip(part, level, x, y, size, strict=True)
            ],
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER dataset_ready_forget_tiles ON dataset")
    op.execute("DROP TRIGGER dataset_deleted_forget_tiles ON dataset")
    op.execute("DROP FUNCTION tile_cache_forget_dataset()")
