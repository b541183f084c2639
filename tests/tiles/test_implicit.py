"""3D Tiles 1.1 implicit tilesets: the subtree files said bit by bit, the tileset of a real city
(the demo city and a point cloud) walked through its subtrees, every object in exactly one of
the contents it names, and the official 3D Tiles validator reporting 0 errors on it as served."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.settings import TileSettings
from cim.tiling import FACTOR, METRES_PER_DEGREE, cell_bounds
from demo.city import generate_city
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.ingest.test_pointcloud import LYON as LAS
from tests.tiles.conftest import assert_valid_tilesets, property_column
from tests.tiles.test_textures import LYON
from tiles.implicit import (
    SUBTREE_LEVELS,
    availability_bits,
    geometric_error,
    implicit_tileset,
    key_set,
    local_key,
    read_subtree,
    subtree,
)

DEMO = "demo"
CLOUD = "cloud"


def walk_subtrees(
    fetch: Callable[[int, int, int], bytes],
) -> Iterator[tuple[tuple[int, int, int], list[bool], bool]]:
    """Every available tile of an implicit tileset: its global key, whether it has each
    content, and whether its subtree says its parent is available (checked by the caller)."""
    n = SUBTREE_LEVELS
    total = ((1 << (2 * n)) - 1) // 3
    pending = [(0, 0, 0)]
    while pending:
        level, x, y = pending.pop()
        doc, binary = read_subtree(fetch(level, x, y))
        tiles = availability_bits(doc, binary, doc["tileAvailability"], total)
        contents = [availability_bits(doc, binary, c, total) for c in doc["contentAvailability"]]
        children = availability_bits(doc, binary, doc["childSubtreeAvailability"], 1 << (2 * n))
        assert tiles[0], "a subtree's root tile must be available"
        assert not any((c & ~tiles).any() for c in contents), "content without a tile"
        for index in np.flatnonzero(tiles):
            d, lx, ly = local_key(int(index))
            key = (level + d, (x << d) + lx, (y << d) + ly)
            parent_ok = d == 0 or bool(tiles[_index(d - 1, lx >> 1, ly >> 1)])
            yield key, [bool(c[index]) for c in contents], parent_ok
        for index in np.flatnonzero(children):
            _, lx, ly = local_key(int(index) + total)  # the level below the subtree
            pending.append((level + n, (x << n) + lx, (y << n) + ly))
            assert tiles[_index(n - 1, lx >> 1, ly >> 1)], "child subtree under a missing tile"


def _key(uri: str) -> tuple[int, int, int]:
    level, x, y = uri.rsplit(".", 1)[0].split("/")[1:]
    return int(level), int(x), int(y)


def _index(d: int, x: int, y: int) -> int:
    morton = 0
    for bit in range(d):
        morton |= ((x >> bit) & 1) << (2 * bit) | ((y >> bit) & 1) << (2 * bit + 1)
    return ((1 << (2 * d)) - 1) // 3 + morton


def test_subtree_bits_by_hand() -> None:
    """Two contents under the level-12 cell (12, 3000, 1500): one at level 13, one at level 19
    (below the subtree rooted at 12, so a child subtree at 18)."""
    keys = key_set([(13, 6001, 3000), (19, 3000 * 128 + 5, 1500 * 128 + 2)], 0.0, 30.0)
    doc, binary = read_subtree(subtree(keys, 12, 3000, 1500) or b"")
    total = ((1 << 12) - 1) // 3
    tiles = availability_bits(doc, binary, doc["tileAvailability"], total)
    content = availability_bits(doc, binary, doc["contentAvailability"][0], total)
    children = availability_bits(doc, binary, doc["childSubtreeAvailability"], 4096)
    # the root, its child (1, 0) for the level-13 content (Morton 1), and the chain down to the
    # level-17 ancestor of the level-19 content: 1 + 1 + 5 levels, one shared root
    assert np.flatnonzero(content).tolist() == [_index(1, 1, 0)]
    assert tiles.sum() == 1 + 1 + 5
    assert tiles[_index(5, 5 >> 1 >> 1, 2 >> 1 >> 1)]
    assert np.flatnonzero(children).tolist() == [int(_index(6, 5 >> 1, 2 >> 1)) - total]
    assert doc["tileAvailability"]["availableCount"] == 7
    # nothing below another cell; the file is 8-byte aligned
    assert subtree(keys, 12, 3001, 1500) is None
    data = subtree(keys, 0, 0, 0) or b""
    assert len(data) % 8 == 0 and data[:4] == b"subt"


def test_geometric_error_halves_and_bounds_what_deeper_levels_hold() -> None:
    for level in range(18):
        assert geometric_error(level + 1) == pytest.approx(geometric_error(level) / 2)
        # the largest object one level deeper is a level-(L+1) cell's extent over FACTOR
        south, north = cell_bounds(level + 1, 0, 0)[1::2]
        assert geometric_error(level) == pytest.approx((north - south) * METRES_PER_DEGREE / FACTOR)
    doc = implicit_tileset(key_set([(14, 1, 2)], 3.0, 40.0))
    assert doc is not None and doc["root"]["implicitTiling"]["availableLevels"] == 15
    assert implicit_tileset(key_set([], 0.0, 0.0)) is None


@pytest.fixture(scope="module")
def served(
    new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Engine, TestClient]:
    engine = new_database()
    demo = generate_city(tmp_path_factory.mktemp("demo") / "demo.city.json", buildings=400, seed=3)
    ingest_files(engine, [demo.path], DEMO)
    ingest_files(engine, [LAS], CLOUD, options=ReadOptions(cell_size=20.0))
    return engine, TestClient(create_app(engine=engine, tile_settings=TileSettings(meshopt=False)))


def download_implicit(client: TestClient, city: str, out: Path) -> list[str]:
    """Write a city's implicit tileset as served (tileset.json, every subtree and content) under
    `out`; returns the URIs of the contents."""
    base = f"/collections/{city}/3dtiles"
    r = client.get(f"{base}/tileset.json", params={"implicit": "true"})
    assert r.status_code == 200, r.text
    assert len(r.content) < 1024  # the same few hundred bytes for any city
    out.mkdir(parents=True, exist_ok=True)
    (out / "tileset.json").write_bytes(r.content)

    def fetch(level: int, x: int, y: int) -> bytes:
        got = client.get(f"{base}/subtrees/{level}/{x}/{y}.subtree")
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/octet-stream"
        path = out / f"subtrees/{level}/{x}/{y}.subtree"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(got.content)
        return got.content

    root = r.json()["root"]
    templates = [c["uri"] for c in root.get("contents", [root.get("content")])]
    uris = []
    for key, has, parent_ok in walk_subtrees(fetch):
        assert parent_ok, f"tile {key} is available but its parent is not"
        for template, there in zip(templates, has, strict=True):
            if there:
                uri = template.format(level=key[0], x=key[1], y=key[2])
                uris.append(uri)
                got = client.get(f"{base}/{uri}")
                assert got.status_code == 200, (key, got.text)
                (out / uri).parent.mkdir(parents=True, exist_ok=True)
                (out / uri).write_bytes(got.content)
    return uris


def test_implicit_tilesets_name_every_tile_and_pass_the_validator(
    served: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    engine, client = served
    for city in (DEMO, CLOUD):
        keys = [_key(u) for u in download_implicit(client, city, tmp_path / city)]
        with engine.connect() as conn:
            stored = {
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT DISTINCT tile_level, tile_x, tile_y FROM city_object"
                        " WHERE city_code = :c AND tile_level IS NOT NULL"
                    ),
                    {"c": city},
                )
            }
        assert sorted(keys) == sorted(stored), city
        # the explicit tileset names the same contents
        explicit = client.get(f"/collections/{city}/3dtiles/tileset.json?implicit=false").json()
        assert "implicitTiling" not in explicit["root"]
    reports = assert_valid_tilesets(tmp_path)
    assert len(reports) == 2
    for report in reports.values():
        assert report["numErrors"] == 0


def test_every_object_once_in_the_implicit_contents(
    served: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    engine, client = served
    seen: list[str] = []
    for uri in download_implicit(client, DEMO, tmp_path):
        seen += property_column((tmp_path / uri).read_bytes(), "id")
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT source_id FROM city_object WHERE city_code = :c AND bbox IS NOT NULL"),
            {"c": DEMO},
        ).scalars()
        assert sorted(seen) == sorted(stored)
    assert len(seen) == len(set(seen))


def test_implicit_follows_the_data_and_errors_are_clear(
    served: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    _, client = served
    base = f"/collections/{DEMO}/3dtiles"
    # small cities stay explicit by default; 3D Tiles 1.0 has no implicit tiling
    assert "implicitTiling" not in client.get(f"{base}/tileset.json").json()["root"]
    bad = client.get(f"{base}/tileset.json", params={"implicit": "true", "version": "1.0"})
    assert bad.status_code == 400 and "1.1" in bad.text
    assert client.get(f"{base}/subtrees/5/0/0.subtree").status_code == 404  # not a root level
    assert client.get(f"{base}/subtrees/6/0/0.subtree").status_code == 404  # nothing there
    assert client.get("/collections/nowhere/3dtiles/subtrees/0/0/0.subtree").status_code == 404
    first = client.get(f"{base}/subtrees/0/0/0.subtree")
    again = client.get(
        f"{base}/subtrees/0/0/0.subtree", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    # another dataset in the city, far away: new tiles appear in the implicit tileset at once
    before = set(download_implicit(client, DEMO, tmp_path / "before"))
    engine = client.app.state.tiles.engine  # type: ignore[attr-defined]
    ingest_files(engine, [LYON], DEMO, crs="EPSG:3946")
    after = set(download_implicit(client, DEMO, tmp_path / "after"))
    assert before < after
