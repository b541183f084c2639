"""An ingest writes each batch's objects in tile order: a tile's objects share heap pages, so
that reading a tile (a request, a seeding) reads few pages, whatever order the file had."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from cim.settings import IngestSettings
from demo.city import generate_city
from ingest.pipeline import ingest_files

BATCH = 500


def _descents(keys: list[tuple[int, int, int]]) -> int:
    """How often a key is below the one before it."""
    return sum(b < a for a, b in zip(keys, keys[1:], strict=False))


def test_objects_and_geometries_are_written_in_tile_order(engine: Engine, tmp_path: Path) -> None:
    path = generate_city(tmp_path / "c.city.json", buildings=2000, seed=5, only_buildings=True).path
    ingest_files(engine, [path], "t", settings=IngestSettings(batch_size=BATCH))
    with engine.connect() as conn:
        objects = conn.execute(
            text(
                "SELECT id, tile_level, tile_x, tile_y FROM city_object WHERE city_code = 't'"
                " ORDER BY ctid"
            )
        ).all()
        geometry_owners = conn.execute(
            text("SELECT object_id FROM object_geometry WHERE city_code = 't' ORDER BY ctid")
        ).scalars()
        placed = conn.execute(
            text("SELECT count(*) FROM city_object WHERE city_code = 't' AND tile_level IS NULL")
        ).scalar_one()
    assert len(objects) == 2000 and placed == 0
    by_id = sorted(objects)
    # the file's order (ids are given in it) is not tile order: the test would see a change
    in_file_order = [tuple(r[1:]) for r in by_id]
    assert _descents(in_file_order) > 100
    # on disk, each batch is one ascending run of tile keys: at most a descent between batches
    on_disk = [tuple(r[1:]) for r in objects]
    assert _descents(on_disk) <= 2000 // BATCH - 1
    assert sorted(on_disk) == sorted(in_file_order)  # the same objects in their own tiles
    # within a tile, as the file had them; the geometries follow their objects
    for batch in range(0, 2000, BATCH):
        run = objects[batch : batch + BATCH]
        assert run == sorted(run, key=lambda r: (r[1], r[2], r[3], r[0]))
    disk_rank = {r[0]: n for n, r in enumerate(objects)}
    owner_ranks = [disk_rank[owner] for owner in geometry_owners]
    assert owner_ranks == sorted(owner_ranks)
