"""3D Tiles of every CityJSON, CityGML, footprint, mesh and point-cloud file in ../shared/data and
of the demo city: valid GLB (Khronos validator, 0 errors), valid tilesets in every form the
service makes (official 3D Tiles validator, 0 errors), one property schema per tileset, and the
rules the official 3D Tiles validator checks, each shown on the real tilesets."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.settings import TileSettings
from demo.city import generate_city
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.ingest.test_citygml import GML_FILES
from tests.ingest.test_citygml import NO_CRS as GML_NO_CRS
from tests.ingest.test_cityjson_files import FILES, NO_CRS
from tests.ingest.test_footprints import FILES as FOOTPRINT_FILES
from tests.ingest.test_mesh import GLB, OBJS, ORIGIN
from tests.ingest.test_pointcloud import LYON as LAS
from tests.tiles.conftest import (
    assert_served_tilesets_valid,
    assert_valid_tilesets,
    glb_positions_lonlath,
    property_column,
    tiles_of,
    unversioned,
    validate_glbs,
)
from tiles.gltf import read_glb

MESHES = [*OBJS, GLB]
# every CityJSON, CityGML, footprint, mesh and point-cloud file of ../shared/data, with the CRS
# of those that declare none (meshes are placed by an origin)
CITIES = {
    **{
        f"c{n}": (path, "EPSG:7415" if path.name in NO_CRS else None, None)
        for n, path in enumerate(FILES)
    },
    **{f"g{n}": (path, GML_NO_CRS.get(path.name), None) for n, path in enumerate(GML_FILES)},
    **{f"f{n}": (path, None, None) for n, path in enumerate(FOOTPRINT_FILES)},
    **{f"m{n}": (path, None, ReadOptions(origin=ORIGIN)) for n, path in enumerate(MESHES)},
    "p0": (LAS, None, ReadOptions(cell_size=20.0)),
}
DEMO = "demo"  # the generated demo city (EPSG:4548), besides every file


@pytest.fixture(scope="module")
def tiled(
    new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Engine, TestClient]:
    engine = new_database()
    for city, (path, crs, options) in CITIES.items():
        ingest_files(engine, [path], city, crs=crs, options=options)
    demo = generate_city(tmp_path_factory.mktemp("demo") / "demo.city.json", buildings=400, seed=11)
    ingest_files(engine, [demo.path], DEMO)
    return engine, TestClient(create_app(engine=engine))


@pytest.fixture(scope="module")
def tilesets(tiled: tuple[Engine, TestClient]) -> dict[str, tuple[dict, dict[str, bytes]]]:
    """Each city's tileset JSON and the content of every tile, fetched over HTTP."""
    _, client = tiled
    out = {}
    for city in [*CITIES, DEMO]:
        r = client.get(f"/collections/{city}/3dtiles/tileset.json")
        assert r.status_code == 200, r.text
        tileset = unversioned(r.json())  # as exported; the versioned URIs are tested in ops
        contents = {}
        for tile in tiles_of(tileset):
            if "content" in tile:
                uri = tile["content"]["uri"]
                got = client.get(f"/collections/{city}/3dtiles/{uri}")
                assert got.status_code == 200
                assert got.headers["content-type"] == "model/gltf-binary"
                contents[uri] = got.content
        out[city] = (tileset, contents)
    return out


def test_every_glb_passes_the_khronos_validator(tilesets: dict, tmp_path: Path) -> None:
    paths = []
    for city, (_, contents) in tilesets.items():
        for uri, data in contents.items():
            path = tmp_path / f"{city}_{uri.replace('/', '_')}"
            path.write_bytes(data)
            paths.append(path)
    assert len(paths) >= len(CITIES)
    reports = validate_glbs(paths)
    failing = {p: r["messages"] for p, r in reports.items() if r["errors"]}
    assert not failing, failing
    assert len(reports) == len(paths)


def test_every_tileset_passes_the_3d_tiles_validator(
    tiled: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    """Every file's city and the demo, as 3D Tiles 1.1 with and without meshopt and as 1.0:
    the official validator finds no error (it reads the property tables of compressed tiles,
    and the glTF of plain ones)."""
    engine, _ = tiled
    reports = assert_served_tilesets_valid(engine, [*CITIES, DEMO], tmp_path)
    assert len(reports) == 3 * (len(CITIES) + 1)


def test_one_schema_per_tileset(tilesets: dict, tiled: tuple[Engine, TestClient]) -> None:
    """Every tile of a city carries the same EXT_structural_metadata schema, the one its city's
    data decides, and every table has every property of the class."""
    engine, _ = tiled
    from tiles.service import TileService

    service = TileService(engine)
    for city, (_, contents) in tilesets.items():
        with engine.connect() as conn:
            from tiles.schema import generation

            ids = generation(conn, city)
        schema = service.schemas.get(city, ids).json
        for data in contents.values():
            doc, _ = read_glb(data)
            meta = doc["extensions"]["EXT_structural_metadata"]
            assert meta["schema"] == schema, city
            assert set(meta["propertyTables"][0]["properties"]) == set(
                schema["classes"]["cityobject"]["properties"]
            )


def test_refine_is_upper_case_and_errors_decrease_to_zero_on_leaves(tilesets: dict) -> None:
    for tileset, _ in tilesets.values():
        assert tileset["asset"]["version"] == "1.1"
        root = tileset["root"]
        assert root["refine"] == "ADD"
        assert tileset["geometricError"] >= root["geometricError"]

        def walk(tile: dict[str, Any]) -> None:
            assert tile.get("refine", "ADD") in ("ADD", "REPLACE")
            children = tile.get("children", [])
            if not children:
                assert tile["geometricError"] == 0
            for child in children:
                assert child["geometricError"] <= tile["geometricError"]
                walk(child)

        walk(root)


def _contains(outer: list[float], inner: list[float]) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
        and outer[4] <= inner[4]
        and outer[5] >= inner[5]
    )


def test_bounding_volumes_contain_children_and_content(tilesets: dict) -> None:
    for tileset, contents in tilesets.values():
        for tile in tiles_of(tileset):
            region = tile["boundingVolume"]["region"]
            assert region[0] <= region[2] and region[1] <= region[3] and region[4] <= region[5]
            for child in tile.get("children", []):
                assert _contains(region, child["boundingVolume"]["region"])
            if "content" in tile:
                llh = glb_positions_lonlath(contents[tile["content"]["uri"]])
                lon, lat = np.radians(llh[:, 0]), np.radians(llh[:, 1])
                assert lon.min() >= region[0] and lon.max() <= region[2]
                assert lat.min() >= region[1] and lat.max() <= region[3]
                assert llh[:, 2].min() >= region[4] - 1e-3
                assert llh[:, 2].max() <= region[5] + 1e-3
                # tight: the region is no bigger than its content (and children) need
                if not tile.get("children"):
                    assert lon.max() - lon.min() >= (region[2] - region[0]) - 1e-7


def test_property_tables_match_the_schema(tilesets: dict) -> None:
    for _, contents in tilesets.values():
        for data in contents.values():
            doc, _ = read_glb(data)
            meta = doc["extensions"]["EXT_structural_metadata"]
            table = meta["propertyTables"][0]
            cls = meta["schema"]["classes"][table["class"]]
            assert set(table["properties"]) == set(cls["properties"])
            for name, prop in table["properties"].items():
                spec = cls["properties"][name]
                assert spec["type"] in ("STRING", "SCALAR", "BOOLEAN")
                view = doc["bufferViews"][prop["values"]]
                if spec["type"] == "SCALAR":
                    size = {"INT32": 4, "FLOAT64": 8}[spec["componentType"]]
                    assert view["byteLength"] == size * table["count"]
                if spec["type"] == "STRING":
                    assert prop["stringOffsetType"] == "UINT32"
            features = doc["meshes"][0]["primitives"][0]["extensions"]["EXT_mesh_features"]
            assert features["featureIds"][0]["featureCount"] == table["count"]
            assert {"id", "type", "cim_id", "height"} <= set(cls["properties"])


def test_every_object_is_in_exactly_one_tile(
    tilesets: dict, tiled: tuple[Engine, TestClient]
) -> None:
    engine, _ = tiled
    for city, (_, contents) in tilesets.items():
        seen: list[str] = []
        for data in contents.values():
            seen += property_column(data, "id")
        with engine.connect() as conn:
            stored = (
                conn.execute(
                    text(
                        "SELECT source_id FROM city_object "
                        "WHERE city_code = :c AND bbox IS NOT NULL"
                    ),
                    {"c": city},
                )
                .scalars()
                .all()
            )
        assert sorted(seen) == sorted(stored), city
        assert len(seen) == len(set(seen))


def test_attributes_keep_their_types(tilesets: dict) -> None:
    """multi_lod's 3DBAG attributes: integers, floats and strings stay what they are."""
    city = next(c for c, (p, *_) in CITIES.items() if p.name == "multi_lod.city.json")
    _, contents = tilesets[city]
    kinds: dict[str, str] = {}
    for data in contents.values():
        doc, _ = read_glb(data)
        props = doc["extensions"]["EXT_structural_metadata"]["schema"]["classes"]["cityobject"]
        for prop in props["properties"].values():
            kinds[prop["name"]] = prop.get("componentType", prop["type"])
    assert kinds["type"] == "STRING" and kinds["cim_id"] == "INT32"
    assert "FLOAT64" in kinds.values()


def test_http_caching_and_cors(tiled: tuple[Engine, TestClient], tilesets: dict) -> None:
    engine, client = tiled
    city = next(iter(CITIES))
    tileset, contents = tilesets[city]
    uri = next(iter(contents))
    first = client.get(f"/collections/{city}/3dtiles/{uri}", headers={"Origin": "http://x.org"})
    assert first.headers["access-control-allow-origin"] == "*"
    etag = first.headers["etag"]
    again = client.get(f"/collections/{city}/3dtiles/{uri}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    ts = client.get(
        f"/collections/{city}/3dtiles/tileset.json", headers={"Accept-Encoding": "gzip"}
    )
    assert ts.headers["content-type"] == "application/json"
    if len(ts.content) > 1024:
        assert ts.headers.get("content-encoding") == "gzip"
    assert client.get(f"/collections/{city}/3dtiles/tiles/30/0/0.glb").status_code == 400
    assert client.get(f"/collections/{city}/3dtiles/tiles/5/0/0.glb").status_code == 404
    assert client.get("/collections/nowhere/3dtiles/tileset.json").status_code == 404
    links = client.get(f"/collections/{city}").json()
    assert links["content"][0]["type"] == "application/3dtiles+json"
    assert links["content"][0]["href"].endswith(f"/collections/{city}/3dtiles/tileset.json")


def test_a_changed_dataset_drops_only_its_own_tiles(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    engine = new_database()
    delft = next(p for p in FILES if p.name == "delft.city.json")
    denbosch = next(p for p in FILES if p.name == "multi_lod.city.json")
    ingest_files(engine, [delft], "nl")
    ingest_files(engine, [denbosch], "nl", crs="EPSG:7415")
    client = TestClient(create_app(engine=engine))
    tileset = client.get("/collections/nl/3dtiles/tileset.json").json()
    etags = {}
    for tile in tiles_of(tileset):
        if "content" in tile:
            uri = tile["content"]["uri"]
            etags[uri] = client.get(f"/collections/nl/3dtiles/{uri}").headers["etag"]

    def cached() -> set[tuple[int, int, int]]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT tile_level, tile_x, tile_y FROM tile_cache")).all()
            return {(r[0], r[1], r[2]) for r in rows}

    def keys_of(name: str) -> set[tuple[int, int, int]]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT DISTINCT o.tile_level, o.tile_x, o.tile_y FROM city_object o"
                    " JOIN dataset d ON d.id = o.dataset_id WHERE d.name = :n"
                ),
                {"n": name},
            ).all()
            return {(r[0], r[1], r[2]) for r in rows}

    everything = cached()
    assert len(everything) == len(etags)
    bosch = keys_of(denbosch.name)
    assert bosch and bosch < everything
    ingest_files(engine, [denbosch], "nl", crs="EPSG:7415")  # replaced
    assert cached() == everything - bosch  # only its own tiles were dropped
    for uri, etag in etags.items():
        path = uri.partition("?")[0]  # the URI carries the content version (?v=)
        level, x, y = (int(v) for v in path.removesuffix(".glb").split("/")[1:])
        now = client.get(f"/collections/nl/3dtiles/{uri}").headers["etag"]
        assert (now != etag) == ((level, x, y) in bosch)  # new object ids, new content
    from ingest.datasets import delete_dataset

    delete_dataset(engine, "nl", denbosch.name)
    assert cached() == everything - bosch
    rest = {
        tuple(t["content"]["uri"].partition("?")[0].removesuffix(".glb").split("/")[1:])
        for t in tiles_of(client.get("/collections/nl/3dtiles/tileset.json").json())
        if "content" in t
    }
    assert {tuple(int(v) for v in k) for k in rest} == everything - bosch
    assert math.isfinite(tileset["geometricError"])
    ingest_files(engine, [denbosch], "nl", crs="EPSG:7415")  # two files' attributes, one schema
    assert_served_tilesets_valid(engine, ["nl"], tmp_path)


def test_seed_and_export_from_the_command_line(
    tiled: tuple[Engine, TestClient],
    tilesets: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from cli.main import main

    engine, _ = tiled
    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    city = next(c for c, (p, *_) in CITIES.items() if p.name == "delft.city.json")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": city})
    runner = CliRunner()
    seeded = runner.invoke(main, ["tiles", "seed", "--city", city])
    assert seeded.exit_code == 0, seeded.output
    tileset, contents = tilesets[city]
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM tile_cache WHERE city_code = :c"), {"c": city}
        ).scalar_one()
    assert n == len(contents)
    out = tmp_path / "export"
    exported = runner.invoke(main, ["tiles", "export", str(out), "--city", city])
    assert exported.exit_code == 0, exported.output
    import json

    assert json.loads((out / "tileset.json").read_text()) == tileset
    for uri, data in contents.items():
        assert (out / uri).read_bytes() == data
    assert_valid_tilesets(out)
    missing = runner.invoke(main, ["tiles", "seed", "--city", "atlantis"])
    assert missing.exit_code == 2 and "no city 'atlantis'" in missing.output


def test_seeding_makes_only_what_is_not_kept(
    tiled: tuple[Engine, TestClient], tilesets: dict
) -> None:
    """Seeding reads tiles a batch at a time and skips those kept for the data as it is; what
    it keeps is what a request makes, byte for byte."""
    from tiles.service import TileService, content_keys

    engine, _ = tiled
    city = max(tilesets, key=lambda c: len(tilesets[c][1]))
    service = TileService(engine, TileSettings())
    keys = content_keys(service.tileset(city))
    assert len(keys) > 8  # more than one batch
    service.seed(city, workers=1)  # kept already, or made now
    made = service.results["made"]
    service.seed(city, workers=1)
    assert service.results["made"] == made  # nothing made again
    one = {"c": city, "l": keys[3][0], "x": keys[3][1], "y": keys[3][2]}
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM tile_cache WHERE city_code = :c AND tile_level = :l"
                " AND tile_x = :x AND tile_y = :y"
            ),
            one,
        )
    service.make_many(city, keys)
    assert service.results["made"] == made + 1  # the one forgotten
    with engine.connect() as conn:
        kept = conn.execute(
            text(
                "SELECT content FROM tile_cache WHERE city_code = :c AND tile_level = :l"
                " AND tile_x = :x AND tile_y = :y AND format = 'glb'"
            ),
            one,
        ).scalar_one()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": city})
    fresh = TileService(engine, TileSettings())
    assert fresh.tile(city, keys[3])[0] == bytes(kept)  # made alone, as a request makes it


def _read_b3dm(data: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    import json
    import struct

    magic, version, total, ft_json, ft_bin, bt_json, bt_bin = struct.unpack_from("<4s6I", data)
    assert magic == b"b3dm" and version == 1 and total == len(data)
    assert ft_bin == 0 and bt_bin == 0
    at = 28
    feature = json.loads(data[at : at + ft_json])
    at += ft_json
    batch = json.loads(data[at : at + bt_json])
    at += bt_json
    assert at % 8 == 0  # the embedded glTF starts on an 8-byte boundary
    return feature, batch, data[at:]


def read_pnts(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A pnts tile's feature table and its per-point arrays (POSITION as absolute Earth-centred
    coordinates, RGB, and the batch table's binary properties), read by the 3D Tiles 1.0 spec."""
    import json
    import struct

    magic, version, total, ft_json, ft_bin, bt_json, bt_bin = struct.unpack_from("<4s6I", data)
    assert magic == b"pnts" and version == 1 and total == len(data)
    at = 28
    feature = json.loads(data[at : at + ft_json])
    body = data[at + ft_json : at + ft_json + ft_bin]
    assert (at + ft_json) % 8 == 0
    n = feature["POINTS_LENGTH"]
    out = {
        "POSITION": np.frombuffer(body, "<f4", n * 3, feature["POSITION"]["byteOffset"])
        .reshape(-1, 3)
        .astype(np.float64)
        + feature.get("RTC_CENTER", [0, 0, 0]),
        "RGB": np.frombuffer(body, "u1", n * 3, feature["RGB"]["byteOffset"]).reshape(-1, 3),
    }
    at += ft_json + ft_bin
    if bt_json:
        batch = json.loads(data[at : at + bt_json])
        binary = data[at + bt_json : at + bt_json + bt_bin]
        kinds = {"UNSIGNED_BYTE": "u1", "UNSIGNED_SHORT": "<u2"}
        for name, spec in batch.items():
            assert spec["type"] == "SCALAR"
            out[name] = np.frombuffer(binary, kinds[spec["componentType"]], n, spec["byteOffset"])
    return feature, out


def _inner_tiles(data: bytes) -> list[bytes]:
    """The tiles of a cmpt (or the tile itself)."""
    import struct

    if data[:4] != b"cmpt":
        return [data]
    magic, version, total, count = struct.unpack_from("<4sIII", data)
    assert version == 1 and total == len(data)
    tiles, at = [], 16
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, at + 8)
        assert at % 8 == 0
        tiles.append(data[at : at + length])
        at += length
    assert at == total
    return tiles


def test_3d_tiles_1_0_b3dm_pnts_cmpt_with_batch_tables(
    tiled: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    engine, client = tiled
    paths = []
    for city in [*CITIES, DEMO]:
        r = client.get(f"/collections/{city}/3dtiles/tileset.json", params={"version": "1.0"})
        tileset = r.json()
        assert tileset["asset"]["version"] == "1.0"
        objects = 0
        for tile in tiles_of(tileset):
            if "content" not in tile:
                continue
            uri = tile["content"]["uri"].partition("?")[0]
            got = client.get(f"/collections/{city}/3dtiles/{uri}")
            assert got.status_code == 200
            assert got.headers["content-type"] == "application/octet-stream"
            inner = _inner_tiles(got.content)
            # the URI names the format: cmpt holds a b3dm and a pnts
            assert [t[:4].decode() for t in inner] == {
                "b3dm": ["b3dm"],
                "pnts": ["pnts"],
                "cmpt": ["b3dm", "pnts"],
            }[uri.rsplit(".", 1)[1]]
            level, x, y = map(int, uri.rsplit(".", 1)[0].split("/")[1:])
            with engine.connect() as conn:
                in_tile = conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE type = 'PointCloud'),"
                        " coalesce(sum((attributes ->> 'points')::int), 0), count(*)"
                        " FROM city_object WHERE city_code = :c AND tile_level = :l"
                        " AND tile_x = :x AND tile_y = :y"
                    ),
                    {"c": city, "l": level, "x": x, "y": y},
                ).one()
            for part in inner:
                if part[:4] == b"pnts":
                    feature, arrays = read_pnts(part)
                    assert feature["POINTS_LENGTH"] == in_tile[1]  # every point of its clouds
                    assert {"Classification", "Intensity"} <= set(arrays)
                    if in_tile[0] == in_tile[2]:
                        objects += in_tile[0]  # a point-only tile: its objects are its clouds
                    continue
                feature, batch, glb = _read_b3dm(part)
                n = feature["BATCH_LENGTH"]
                assert n > 0 and all(len(column) == n for column in batch.values())
                assert {"id", "type", "cim_id", "height"} <= set(batch)
                doc, _ = read_glb(glb)
                assert (
                    "extensionsUsed" not in doc or "EXT_mesh_features" not in doc["extensionsUsed"]
                )
                assert all("_BATCHID" in p["attributes"] for p in doc["meshes"][0]["primitives"])
                path = tmp_path / f"{city}_{uri.replace('/', '_')}.glb"
                path.write_bytes(glb)
                paths.append(path)
                objects += n
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM city_object WHERE city_code = :c AND bbox IS NOT NULL"),
                {"c": city},
            ).scalar_one()
        assert objects == stored
    reports = validate_glbs(paths)
    failing = {p: r["messages"] for p, r in reports.items() if r["errors"]}
    assert not failing, failing
    assert (
        client.get("/collections/c0/3dtiles/tileset.json", params={"version": "2.0"}).status_code
        == 400
    )


def test_static_exports_equal_what_is_served(
    tiled: tuple[Engine, TestClient], tilesets: dict, tmp_path: Path
) -> None:
    """`cim tiles export` of every city (the demo and each CityJSON file) writes exactly the
    tileset and contents checked above, in both versions."""
    from tiles.service import TileService

    engine, client = tiled
    export = TileService(engine).export
    for city, (tileset, contents) in tilesets.items():
        out = tmp_path / city
        assert export(city, out) == len(contents)
        import json

        assert json.loads((out / "tileset.json").read_text()) == tileset
        for uri, data in contents.items():
            assert (out / uri).read_bytes() == data
        old = tmp_path / f"{city}-1.0"
        export(city, old, fmt="b3dm")
        doc = json.loads((old / "tileset.json").read_text())
        assert doc["asset"]["version"] == "1.0"
        for tile in tiles_of(doc):
            if "content" in tile:
                uri = tile["content"]["uri"]
                served = client.get(f"/collections/{city}/3dtiles/{uri}").content
                assert (old / uri).read_bytes() == served
                assert served[:4].decode() == uri.rsplit(".", 1)[1]  # b3dm, pnts or cmpt
    assert len(assert_valid_tilesets(tmp_path)) == 2 * len(tilesets)


def test_lines_points_and_undrawable_objects_give_valid_tiles(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    """A tile of lines, one of points, and one whose only object has nothing to draw (a
    zero-area surface) are all valid glTF, and each object is still in its tile's table."""
    import json

    doc = {
        "type": "CityJSON",
        "version": "2.0",
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4548"},
        "transform": {"scale": [0.01, 0.01, 0.01], "translate": [500000.0, 4057000.0, 0.0]},
        "CityObjects": {
            "fence": {
                "type": "+Fence",
                "geometry": [
                    {"type": "MultiLineString", "lod": "1", "boundaries": [[0, 1, 2], [2, 3]]}
                ],
            },
            "lamp": {
                "type": "CityFurniture",
                "geometry": [{"type": "MultiPoint", "lod": "1", "boundaries": [4]}],
            },
            "flat": {
                "type": "GenericCityObject",
                "geometry": [{"type": "MultiSurface", "lod": "1", "boundaries": [[[5, 5, 6]]]}],
            },
        },
        "vertices": [
            [0, 0, 0],
            [1000, 0, 0],
            [1000, 1000, 0],
            [0, 1000, 0],
            [500000, 500000, 800],
            [900000, 0, 0],
            [900100, 0, 0],
            [900200, 0, 0],
        ],
    }
    path = tmp_path / "odd.city.json"
    path.write_text(json.dumps(doc))
    engine = new_database()
    ingest_files(engine, [path], "odd")
    client = TestClient(create_app(engine=engine))
    tileset = client.get("/collections/odd/3dtiles/tileset.json").json()
    paths, ids = [], []
    for tile in tiles_of(tileset):
        if "content" in tile:
            data = client.get(f"/collections/odd/3dtiles/{tile['content']['uri']}").content
            ids += property_column(data, "id")
            path = tmp_path / tile["content"]["uri"].replace("/", "_")
            path.write_bytes(data)
            paths.append(path)
    assert sorted(ids) == ["fence", "flat", "lamp"]
    reports = validate_glbs(paths)
    assert not {p: r["messages"] for p, r in reports.items() if r["errors"]}
    assert_served_tilesets_valid(engine, ["odd"], tmp_path / "served")
    modes = set()
    for p in paths:
        doc_, _ = read_glb(p.read_bytes())
        for mesh in doc_.get("meshes", []):
            modes |= {prim["mode"] for prim in mesh["primitives"]}
    assert {0, 1} <= modes  # points and lines are drawn
