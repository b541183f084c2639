"""Migration 0007: the database forgets a dataset's cached tiles by itself (whoever deletes or
finishes the dataset), and objects stored before tiles existed get their tile."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy import Connection, Engine, text

from cim.db.engine import head_revision, upgrade
from cim.tiling import tile_keys

_BOXES_AND_KEYS = text(
    "SELECT ST_XMin(bbox), ST_YMin(bbox), z_min, ST_XMax(bbox), ST_YMax(bbox), z_max,"
    " tile_level, tile_x, tile_y, size FROM city_object ORDER BY id"
)


def _database_at(new_database: Callable[[], Engine], revision: str) -> Engine:
    """A fresh database migrated only up to `revision` (the template one is at head)."""
    engine = new_database()
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(engine, revision)
    return engine


def _city_with_datasets(conn: Connection, tile_keys_given: bool) -> None:
    """City c with datasets a (two objects) and b (one object); keys given or left empty."""
    conn.execute(text("INSERT INTO city (code) VALUES ('c')"))
    for ds, name in ((1, "a"), (2, "b")):
        conn.execute(
            text(
                "INSERT INTO dataset (city_code, id, name, source_path, format, source_crs,"
                " checksum, object_count, counts, warnings, appearance, file_metadata,"
                " attribute_keys) OVERRIDING SYSTEM VALUE VALUES ('c', :id, :n, 'f', 'cityjson',"
                " 'EPSG:4326', '0', 1, '{}', '[]', '{}', '{}', '{}')"
            ),
            {"id": ds, "n": name},
        )
    # object 1 (dataset a) in tile 5/1/1, object 2 (a) in 5/2/2, object 3 (b) in 5/2/2
    for oid, ds, (lon, lat), key in (
        (1, 1, (117.00, 36.60), (5, 1, 1)),
        (2, 1, (117.10, 36.70), (5, 2, 2)),
        (3, 2, (117.20, 36.80), (5, 2, 2)),
    ):
        level, x, y = key if tile_keys_given else (None, None, None)
        conn.execute(
            text(
                "INSERT INTO city_object (city_code, id, dataset_id, source_id, type, parents,"
                " children, attributes, extra, lods, bbox, z_min, z_max, tile_level, tile_x,"
                " tile_y) OVERRIDING SYSTEM VALUE VALUES ('c', :id, :ds, :sid, 'Building', '{}',"
                " '{}', '{}', '{}', '{}', ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326), 10, 40,"
                " :l, :x, :y)"
            ),
            {
                "id": oid,
                "ds": ds,
                "sid": f"o{oid}",
                "x0": lon,
                "y0": lat,
                "x1": lon + 0.0003,
                "y1": lat + 0.0002,
                "l": level,
                "x": x,
                "y": y,
            },
        )


def _cached(conn: Connection) -> set[tuple[int, int, int]]:
    rows = conn.execute(text("SELECT tile_level, tile_x, tile_y FROM tile_cache")).all()
    return {tuple(r) for r in rows}


def _cache(conn: Connection, *keys: tuple[int, int, int]) -> None:
    for level, x, y in keys:
        conn.execute(
            text(
                "INSERT INTO tile_cache (city_code, tile_level, tile_x, tile_y, format, content,"
                " etag) VALUES ('c', :l, :x, :y, 'glb', '\\x00', 'e')"
            ),
            {"l": level, "x": x, "y": y},
        )


def test_deleting_a_dataset_forgets_only_its_tiles(engine: Engine) -> None:
    with engine.begin() as conn:
        _city_with_datasets(conn, tile_keys_given=True)
        _cache(conn, (5, 1, 1), (5, 2, 2), (5, 3, 3))
    with engine.begin() as conn:  # plain SQL: no CIM code runs
        conn.execute(text("DELETE FROM dataset WHERE name = 'b'"))
        assert _cached(conn) == {(5, 1, 1), (5, 3, 3)}
        conn.execute(text("DELETE FROM dataset WHERE name = 'a'"))
        assert _cached(conn) == {(5, 3, 3)}


def test_finishing_a_dataset_forgets_its_tiles_and_other_updates_do_not(engine: Engine) -> None:
    with engine.begin() as conn:
        _city_with_datasets(conn, tile_keys_given=True)
        _cache(conn, (5, 1, 1), (5, 2, 2))
        conn.execute(text("UPDATE dataset SET object_count = 2 WHERE name = 'a'"))
        conn.execute(text("UPDATE dataset SET status = 'loading' WHERE name = 'a'"))
        assert _cached(conn) == {(5, 1, 1), (5, 2, 2)}
        conn.execute(text("UPDATE dataset SET status = 'ready' WHERE name = 'b'"))
        assert _cached(conn) == {(5, 1, 1)}


def test_objects_without_a_tile_get_the_ingest_s_tile(
    new_database: Callable[[], Engine],
) -> None:
    engine = _database_at(new_database, "0006")
    with engine.begin() as conn:
        _city_with_datasets(conn, tile_keys_given=False)
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(_BOXES_AND_KEYS).all()
    box = np.array([r[:6] for r in rows], dtype=np.float64)
    level, x, y, size = tile_keys(box[:, :3], box[:, 3:])
    assert [r[6:9] for r in rows] == list(zip(level.tolist(), x.tolist(), y.tolist(), strict=True))
    assert [r[9] for r in rows] == size.tolist()
    assert all(r[6] is not None for r in rows)


def test_upgrade_after_restoring_an_older_dump(new_database: Callable[[], Engine]) -> None:
    """`pg_restore --clean` of a dump taken at 0006 into a newer database drops the tables and
    their triggers but leaves 0007's function: upgrading again must still work."""
    engine = _database_at(new_database, "0006")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION tile_cache_forget_dataset() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RETURN NULL; END $$"
            )
        )
    assert upgrade(engine) == head_revision()
    with engine.begin() as conn:
        _city_with_datasets(conn, tile_keys_given=True)
        _cache(conn, (5, 1, 1))
        conn.execute(text("DELETE FROM dataset WHERE name = 'a'"))
        assert _cached(conn) == set()  # the function is 0007's own again
