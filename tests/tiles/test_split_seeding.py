"""Point-cloud contents made fast and kept: points are made Earth-centred in NumPy (within 1 mm
of PostGIS's ST_Transform, which it replaces), many parts of over-full tiles come from one
query and equal the parts made one by one, and a seeded city's parts are kept in `tile_cache`,
served by another process without being made again, and made again once the city's data
changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.crs import lonlath_to_ecef
from cim.settings import TileSettings
from demo.city import generate_city
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.ingest.test_pointcloud import LYON as LAS
from tiles.availability import Availability
from tiles.content import _points, part_content, part_contents
from tiles.parts import CELL_FORMAT
from tiles.service import TileService

BUDGET_KB = 40  # small, so that the LAS file's tiles are over-full (as test_implicit_split)
CLOUD = "cloud"


def _settings() -> TileSettings:
    return TileSettings(content_max_kb=BUDGET_KB)


def _availability(engine: Engine) -> Availability:
    """A process's view of the parts, as a new serving process has it."""
    return Availability(TileService(engine, _settings()))


@pytest.fixture(scope="module")
def cloud(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    ingest_files(engine, [LAS], CLOUD, options=ReadOptions(cell_size=2.0))
    return engine


def _kept(engine: Engine) -> dict[tuple[int, int, int], bytes]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tile_level, tile_x, tile_y, content FROM tile_cache"
                " WHERE city_code = :c AND format = :f"
            ),
            {"c": CLOUD, "f": CELL_FORMAT},
        ).all()
    return {(r[0], r[1], r[2]): bytes(r[3]) for r in rows}


def test_points_are_made_earth_centred_as_postgis_makes_them(cloud: Engine) -> None:
    """Every stored point of the LAS file, and points at the poles, on the antimeridian, deep
    and high: NumPy's conversion of the stored longitude, latitude and ellipsoidal height is
    PostGIS's EPSG:4979 -> EPSG:4978 within 1 mm."""
    extremes = (
        "MULTIPOINT Z((0 0 0), (180 0 0), (-180 -89.999999 -100), (179.9999 90 8848),"
        " (4.85 45.76 170.2), (117.1 36.7 -50), (-73.98 40.75 36000000))"
    )
    with cloud.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ST_AsBinary(g.geom), ST_AsBinary(ST_Transform(g.geom, 4978))"
                " FROM object_geometry g WHERE g.city_code = :c"
                " AND GeometryType(g.geom) = 'MULTIPOINT'"
                " UNION ALL SELECT ST_AsBinary(e), ST_AsBinary(ST_Transform(e, 4978))"
                " FROM ST_GeomFromText(:extremes, 4979) AS e"
            ),
            {"c": CLOUD, "extremes": extremes},
        ).all()
    stored = np.concatenate([_points(bytes(r[0])) for r in rows])
    postgis = np.concatenate([_points(bytes(r[1])) for r in rows])
    assert len(stored) > 10_000
    ours = lonlath_to_ecef(stored)
    assert np.abs(ours - postgis).max() < 0.001
    # and not by accident: the stored coordinates are degrees, the others metres
    assert np.abs(stored[:, :2]).max() <= 180 and np.abs(postgis).max() > 6_000_000


def test_parts_from_one_query_equal_parts_made_one_by_one(cloud: Engine) -> None:
    available = _availability(cloud)
    item = available._city(CLOUD)
    # the file's tiles are over-full at this budget: parts of one and of tens of objects
    assert len(item.parts) >= 5 and max(len(ids) for ids in item.parts.values()) > 10
    schema = available.service.schemas.get(CLOUD, item.ids)
    parts = [(key, ids.tolist()) for key, ids in item.parts.items()]
    with cloud.connect() as conn:
        many = dict(part_contents(conn, CLOUD, parts, schema))
        for key, ids in parts:
            assert many[key] == part_content(conn, CLOUD, ids, schema), key


def test_seeded_parts_are_kept_and_served_without_being_made(cloud: Engine) -> None:
    seeding = _availability(cloud)
    steps: list[tuple[int, int]] = []
    count = seeding.seed(CLOUD, lambda done, total: steps.append((done, total)), workers=2)
    parts = seeding._city(CLOUD).parts
    assert count == len(parts) and steps[-1] == (count, count)
    kept = _kept(cloud)
    assert set(kept) == set(parts)
    # seeding again makes nothing: every part is kept for the data as it is
    again = _availability(cloud)
    assert again.seed(CLOUD, workers=1) == count
    assert again.results["made"] == 0
    # another process serves every part from tile_cache, as kept, and then from its memory
    serving = _availability(cloud)
    for key, content in kept.items():
        assert serving.cell(CLOUD, *key)[0] == content
    assert serving.results == {"database": len(kept)}
    serving.cell(CLOUD, *next(iter(kept)))
    assert serving.results["memory"] == 1
    # and so does the HTTP route of an app with the same settings
    client = TestClient(create_app(engine=cloud, tile_settings=_settings()))
    key, content = next(iter(kept.items()))
    got = client.get(f"/collections/{CLOUD}/3dtiles/cells/{key[0]}/{key[1]}/{key[2]}.glb")
    assert got.status_code == 200 and got.content == content


def test_parts_are_made_again_when_the_data_changes(cloud: Engine, tmp_path: Path) -> None:
    _availability(cloud).seed(CLOUD, workers=1)
    before = _kept(cloud)
    assert before
    # a dataset added to the city: a new generation, whose parts none of the kept ones are
    demo = generate_city(tmp_path / "d.city.json", buildings=3, seed=5)
    ingest_files(cloud, [demo.path], CLOUD)
    serving = _availability(cloud)
    item = serving._city(CLOUD)
    key = next(k for k in item.parts if k in before)
    serving.cell(CLOUD, *key)
    assert serving.results == {"made": 1}
    # made on request, it is kept too: a new process finds it
    other = _availability(cloud)
    other.cell(CLOUD, *key)
    assert other.results == {"database": 1}
    # seeding the new generation lets the parts of the old one go
    _availability(cloud).seed(CLOUD, workers=1)
    with cloud.connect() as conn:
        stamps = conn.execute(
            text(
                "SELECT count(DISTINCT made_with) FROM tile_cache"
                " WHERE city_code = :c AND format = :f"
            ),
            {"c": CLOUD, "f": CELL_FORMAT},
        ).scalar_one()
    assert stamps == 1
    assert set(_kept(cloud)) == set(_availability(cloud)._city(CLOUD).parts)
    # a different content budget is a different variant: not served from the kept parts
    smaller = Availability(TileService(cloud, _settings()), budget=BUDGET_KB * 1000 // 2)
    first = next(iter(smaller._city(CLOUD).parts))
    smaller.cell(CLOUD, *first)
    assert smaller.results == {"made": 1}


def test_cim_tiles_seed_makes_and_keeps_the_parts(
    cloud: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.setenv("CIM_DATABASE_URL", cloud.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CIM_TILES_CONTENT_MAX_KB", str(BUDGET_KB))
    with cloud.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": CLOUD})
    seeded = CliRunner().invoke(main, ["tiles", "seed", "--city", CLOUD, "--workers", "1"])
    assert seeded.exit_code == 0, seeded.output
    parts = _availability(cloud)._city(CLOUD).parts
    assert set(_kept(cloud)) == set(parts)
    with cloud.connect() as conn:
        tiles = conn.execute(
            text("SELECT count(*) FROM tile_cache WHERE city_code = :c AND format = 'glb'"),
            {"c": CLOUD},
        ).scalar_one()
    assert f"{tiles + len(parts)} tiles ready" in seeded.output
    # the tiles kept are those the implicit tileset serves as they are: the over-full ones,
    # whose objects went to parts, are left to the explicit tileset's requests
    with cloud.connect() as conn:
        kept_tiles = {
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT tile_level, tile_x, tile_y FROM tile_cache"
                    " WHERE city_code = :c AND format = 'glb'"
                ),
                {"c": CLOUD},
            )
        }
    assert kept_tiles == _availability(cloud)._city(CLOUD).native
    # a serving process makes none of them
    serving = _availability(cloud)
    for key in parts:
        serving.cell(CLOUD, *key)
    assert serving.results == {"database": len(parts)}


def _every_kept(engine: Engine) -> dict[tuple[str, int, int, int], str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT format, tile_level, tile_x, tile_y, etag FROM tile_cache"
                " WHERE city_code = :c"
            ),
            {"c": CLOUD},
        ).all()
    return {(r[0], r[1], r[2], r[3]): r[4] for r in rows}


def test_one_pool_seeds_tiles_and_parts_as_one_process_does(cloud: Engine) -> None:
    """`seed_all` gives the tiles and the parts to one pool of processes: it keeps the same
    contents as one process making the tiles and then the parts, and says so as it goes."""
    with cloud.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": CLOUD})
    steps: list[tuple[int, int]] = []
    count = _availability(cloud).seed_all(
        CLOUD, lambda done, total: steps.append((done, total)), workers=2
    )
    pooled = _every_kept(cloud)
    item = _availability(cloud)._city(CLOUD)
    assert item.parts and item.native  # both kinds
    assert count == len(pooled) == len(item.native) + len(item.parts)
    assert steps[0] == (0, count) and steps[-1] == (count, count)
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)
    with cloud.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": CLOUD})
    assert _availability(cloud).seed_all(CLOUD, workers=1) == count
    assert _every_kept(cloud) == pooled  # the same contents (etags are their SHA-256)
    # seeding again makes nothing: every content is kept for the data as it is
    again = _availability(cloud)
    assert again.seed_all(CLOUD, workers=2) == count
    assert again.results["made"] == 0 and _every_kept(cloud) == pooled
