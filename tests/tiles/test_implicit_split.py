"""Tiles a browser can stream: over-full tiles give their objects out to finer cells (tiles.split).
The planner alone (every object once, every cell within the budget, the same answer whatever
the order), then a dense building district and a dense LAS point cloud served with a small
content budget: no content over it, every object and every point present exactly once, and the
official 3D Tiles validator reports 0 errors on the tilesets with parts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.settings import TileSettings
from cli.main import main
from demo.city import generate_city
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.ingest.test_pointcloud import LYON as LAS
from tests.ingest.test_pointcloud import las_header
from tests.tiles.conftest import (
    assert_valid_tilesets,
    download_tileset,
    property_column,
    tiles_of,
)
from tests.tiles.test_implicit import download_implicit
from tests.tiles.test_tilesets import _inner_tiles, _read_b3dm, read_pnts
from tiles.gltf import read_glb
from tiles.split import KEEP, Pooled, plan

BUDGET_KB = 40  # small, so that the test's small cities are dense for it
DISTRICT = "district"
CLOUD = "cloud"


def _pooled(n: int, seed: int) -> Pooled:
    """n objects of one level-15 tile, crowded in its cell, of random size and weight."""
    rng = np.random.default_rng(seed)
    west, south = 117.0, 36.6
    cell = 180.0 / (1 << 15)
    x, y = int((west + 180) / 360 * (1 << 15)), int((south + 90) / 180 * (1 << 15))
    lon = (x + rng.uniform(0, 1, n)) * 2 * cell - 180.0
    lat = (y + rng.uniform(0, 1, n)) * cell - 90.0
    return Pooled(
        ids=np.arange(1, n + 1, dtype=np.int64),
        levels=np.full(n, 15, np.int64),
        xs=np.full(n, x, np.int64),
        ys=np.full(n, y, np.int64),
        lon=lon,
        lat=lat,
        size=rng.uniform(0.5, 5, n),
        weight=rng.integers(1_000, 20_000, n),
    )


def test_the_plan_gives_each_object_one_cell_within_the_budget() -> None:
    pooled = _pooled(5000, 1)
    budget = 100_000
    cells = plan(pooled, budget)
    every = np.concatenate(list(cells.values()))
    assert sorted(every.tolist()) == pooled.ids.tolist()  # each object exactly once
    weight = dict(zip(pooled.ids.tolist(), pooled.weight.tolist(), strict=True))
    for (level, x, y), ids in cells.items():
        assert sum(weight[i] for i in ids.tolist()) <= budget, (level, x, y)
        # each object's cell holds its centre, at its own level or deeper
        n = 1 << level
        at = ids - 1
        assert level >= 15
        assert (np.floor((pooled.lon[at] + 180) / 360 * n) == x).all()
        assert (np.floor((pooled.lat[at] + 90) / 180 * n) == y).all()
    # the tile itself keeps the largest objects, up to a quarter of the budget
    top = cells[(15, int(pooled.xs[0]), int(pooled.ys[0]))]
    assert sum(weight[i] for i in top.tolist()) <= budget // KEEP
    assert pooled.size[top - 1].min() >= np.sort(pooled.size)[-len(top)]
    # stable: the same cells whatever order the objects come in
    order = np.random.default_rng(2).permutation(5000)
    shuffled = Pooled(*(getattr(pooled, f)[order] for f in Pooled.__dataclass_fields__))
    again = plan(shuffled, budget)
    assert again.keys() == cells.keys()
    assert all((again[k] == cells[k]).all() for k in cells)


def test_a_giant_stays_alone_and_a_fitting_tile_is_left_whole() -> None:
    pooled = _pooled(3, 3)
    giant = Pooled(**{**pooled.__dict__, "weight": np.array([10**7, 10, 10])})
    cells = plan(giant, 1000)
    assert sum(len(v) for v in cells.values()) == 3
    assert any(v.tolist() == [1] for v in cells.values())
    whole = plan(pooled, 10**9)
    assert list(whole) == [(15, int(pooled.xs[0]), int(pooled.ys[0]))]


def test_no_object_goes_into_a_cell_smaller_than_itself() -> None:
    """200 objects of 100 m and a budget of one object: they may go down to level 17 (cells of
    153 m north-south), never to level 18 (76 m), however full level 17 is."""
    pooled = _pooled(200, 4)
    big = Pooled(**{**pooled.__dict__, "size": np.full(200, 100.0)})
    cells = plan(big, 20_000)
    assert max(level for level, _, _ in cells) == 17
    assert sum(len(v) for v in cells.values()) == 200


@pytest.fixture(scope="module")
def served(
    new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Engine, TestClient]:
    engine = new_database()
    demo = generate_city(tmp_path_factory.mktemp("d") / "d.city.json", buildings=600, seed=4)
    ingest_files(engine, [demo.path], DISTRICT)
    ingest_files(engine, [LAS], CLOUD, options=ReadOptions(cell_size=5.0))
    settings = TileSettings(meshopt=False, content_max_kb=BUDGET_KB)
    return engine, TestClient(create_app(engine=engine, tile_settings=settings))


def test_dense_cities_stream_in_contents_within_the_budget(
    served: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    engine, client = served
    implicit_uris: dict[str, list[str]] = {}
    for city in (DISTRICT, CLOUD):
        # over-full tiles make the implicit tileset the default, with parts
        root = client.get(f"/collections/{city}/3dtiles/tileset.json").json()["root"]
        assert root["content"]["uri"].startswith("cells/"), city
        uris = download_implicit(client, city, tmp_path / city)
        implicit_uris[city] = sorted(uris)
        # deeper cells than any tile of the city had
        with engine.connect() as conn:
            deepest = conn.execute(
                text("SELECT max(tile_level) FROM city_object WHERE city_code = :c"), {"c": city}
            ).scalar_one()
        assert max(int(u.split("/")[1]) for u in uris) > deepest
        # every object exactly once; no content over the budget but for one object alone that
        # is larger (here an overview cell of the LAS file: 80 m of thinned points)
        seen: list[str] = []
        giants = []
        for u in uris:
            data = (tmp_path / city / u).read_bytes()
            ids = property_column(data, "id")
            seen += ids
            if len(data) > BUDGET_KB * 1000:
                assert len(ids) == 1, (city, u, len(data), len(ids))
                giants.append(ids[0])
        assert len(giants) <= (0 if city == DISTRICT else 1), giants
        assert all(".L" in g for g in giants), giants
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT source_id FROM city_object WHERE city_code = :c AND bbox IS NOT NULL"),
                {"c": city},
            ).scalars()
            assert sorted(seen) == sorted(stored), city
    # every point of the LAS file exactly once, over all contents
    points = 0
    for path in (tmp_path / CLOUD).rglob("*.glb"):
        doc, _ = read_glb(path.read_bytes())
        for primitive in doc["meshes"][0]["primitives"]:
            if primitive.get("mode") == 0:
                points += doc["accessors"][primitive["attributes"]["POSITION"]]["count"]
    assert points == las_header(LAS)["count"]
    # the explicit 3D Tiles 1.1 tileset names the same cells, so it streams the same contents
    for city in (DISTRICT, CLOUD):
        out = tmp_path / "explicit" / city
        download_tileset(client, city, out, "1.1")
        doc = json.loads((out / "tileset.json").read_text())
        uris = sorted(t["content"]["uri"] for t in tiles_of(doc) if "content" in t)
        assert uris == implicit_uris[city]
        assert "implicitTiling" not in doc["root"]
        assert all((out / u).read_bytes() == (tmp_path / city / u).read_bytes() for u in uris), city
    reports = assert_valid_tilesets(tmp_path)
    assert len(reports) == 4


def test_no_content_at_other_cells(served: tuple[Engine, TestClient]) -> None:
    _, client = served
    assert client.get(f"/collections/{DISTRICT}/3dtiles/cells/3/0/0.glb").status_code == 404
    assert client.get("/collections/nowhere/3dtiles/cells/3/0/0.glb").status_code == 404


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_explicit_tilesets_and_exports_of_dense_cities_name_cells_within_the_budget(
    served: tuple[Engine, TestClient], tmp_path: Path, version: str
) -> None:
    """3D Tiles 1.0 (each cell's content in the format the tiles' rule gives it: b3dm, pnts or
    cmpt) and `cim tiles export` stream a dense city in the same cells as the implicit tileset:
    every object once, no content over the budget but for a lone giant, the files exported
    equal to those served, and the official validator content."""
    engine, client = served
    url = engine.url.render_as_string(hide_password=False)
    env = {"CIM_DATABASE_URL": url, "CIM_TILES_CONTENT_MAX_KB": str(BUDGET_KB)}
    env["CIM_TILES_MESHOPT"] = "false"  # as the app of the fixture
    for city in (DISTRICT, CLOUD):
        served_dir, exported = tmp_path / "served" / city, tmp_path / "exported" / city
        download_tileset(client, city, served_dir, version)
        doc = json.loads((served_dir / "tileset.json").read_text())
        assert doc["asset"]["version"] == version
        uris = sorted(t["content"]["uri"] for t in tiles_of(doc) if "content" in t)
        assert uris and all(u.startswith("cells/") for u in uris), uris[:3]
        implicit = client.get(f"/collections/{city}/3dtiles/tileset.json").json()
        assert implicit["root"]["content"]["uri"].startswith("cells/")
        ids: list[str] = []
        points = 0
        for uri in uris:
            data = (served_dir / uri).read_bytes()
            ext = uri.rsplit(".", 1)[1]
            assert data[:4] == (b"glTF" if ext == "glb" else ext.encode()), uri
            if version == "1.1":
                mine = property_column(data, "id")
            else:
                mine = []
                for inner in _inner_tiles(data):
                    if inner[:4] == b"b3dm":
                        mine += _read_b3dm(inner)[1]["id"]
                    else:
                        points += read_pnts(inner)[0]["POINTS_LENGTH"]
            ids += mine
            if len(data) > BUDGET_KB * 1000:  # an object larger than the budget, alone
                glb = client.get(f"/collections/{city}/3dtiles/{uri.rsplit('.', 1)[0]}.glb")
                alone = property_column(glb.content, "id")
                assert len(alone) == 1 and ".L" in alone[0], (uri, len(data), alone[:3])
        if city == DISTRICT:
            with engine.connect() as conn:
                stored = conn.execute(
                    text("SELECT source_id FROM city_object WHERE city_code = :c"), {"c": city}
                ).scalars()
                assert sorted(ids) == sorted(stored)
        elif version == "1.0":
            assert points == las_header(LAS)["count"]
        result = CliRunner().invoke(
            main, ["tiles", "export", str(exported), "--city", city, "--version", version], env=env
        )
        assert result.exit_code == 0, result.output
        assert f"{len(uris)} tiles written" in result.output
        assert json.loads((exported / "tileset.json").read_text()) == doc
        assert all((exported / u).read_bytes() == (served_dir / u).read_bytes() for u in uris)
    reports = assert_valid_tilesets(tmp_path)
    assert len(reports) == 4
