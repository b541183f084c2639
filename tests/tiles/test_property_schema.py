"""One property schema per city: each attribute gets one type from what it holds in the whole
city (tiles.metadata's rule), every tile carries the same class, a text property empty in a
whole tile is still written validly, and the schema is decided once per generation of the
city's data (the ids of its datasets), from statistics measured once per dataset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from ingest.pipeline import ingest_files
from tests.ingest.test_cityjson_files import FILES
from tests.ingest.test_footprints import FILES as FOOTPRINTS
from tests.tiles.conftest import assert_served_tilesets_valid, property_column, tiles_of
from tests.tiles.test_tilesets import _read_b3dm
from tiles.gltf import read_glb
from tiles.properties import TEXT_NODATA, DatasetStats, KeyStats, decide, kind_of
from tiles.schema import measure
from tiles.service import TileService

# buildings 5 km apart (EPSG:4548, metres), each in a tile of its own
_SPOTS = [(500000.0 + 5000 * n, 4057000.0) for n in range(3)]
# file A: whole numbers, true/false on every object, empty texts, an attribute called "id"
A = {
    "a1": {"floors": 3, "code": 12, "flag": True, "note": "", "ratio": 1, "ok": True, "id": "x"},
    "a2": {"floors": 5, "code": 13, "flag": False, "note": "", "ratio": 2, "ok": False},
    "a3": {"floors": 7, "code": 14, "flag": True, "note": "", "ratio": 3, "ok": True},
}
# file B: a text code, no floors and no flag, a fraction, and "ok" everywhere still
B = {"b1": {"code": "A-7", "note": "", "ratio": 2.5, "ok": True, "tags": ["old", "listed"]}}


def _city_json(path: Path, objects: dict[str, dict[str, Any]], shift: float = 0.0) -> Path:
    """A CityJSON file of 10 m square buildings, one per spot, with these attributes."""
    vertices, members = [], {}
    for n, (name, attributes) in enumerate(objects.items()):
        x, y = _SPOTS[n % len(_SPOTS)]
        y += shift
        base = len(vertices)
        vertices += [[x, y, 20], [x + 10, y, 20], [x + 10, y + 10, 20], [x, y + 10, 20]]
        members[name] = {
            "type": "Building",
            "attributes": attributes,
            "geometry": [
                {
                    "type": "MultiSurface",
                    "lod": "1",
                    "boundaries": [[[base, base + 1, base + 2, base + 3]]],
                }
            ],
        }
    doc = {
        "type": "CityJSON",
        "version": "2.0",
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4548"},
        "transform": {"scale": [0.01, 0.01, 0.01], "translate": [0.0, 0.0, 0.0]},
        "CityObjects": members,
        "vertices": [[round(v / 0.01) for v in xyz] for xyz in vertices],
    }
    path.write_text(json.dumps(doc))
    return path


def _tiles(client: TestClient, city: str, version: str = "1.1") -> dict[str, bytes]:
    tileset = client.get(f"/collections/{city}/3dtiles/tileset.json", params={"version": version})
    assert tileset.status_code == 200, tileset.text
    return {
        t["content"]["uri"]: client.get(
            f"/collections/{city}/3dtiles/{t['content']['uri']}"
        ).content
        for t in tiles_of(tileset.json())
        if "content" in t
    }


def _schema_of(contents: dict[str, bytes]) -> dict[str, Any]:
    """The one schema of these GLB tiles (each tile must carry the same)."""
    schemas = [
        read_glb(data)[0]["extensions"]["EXT_structural_metadata"]["schema"]
        for data in contents.values()
    ]
    assert schemas and all(s == schemas[0] for s in schemas)
    return schemas[0]


def _kinds(schema: dict[str, Any]) -> dict[str, str]:
    props = schema["classes"]["cityobject"]["properties"].values()
    return {p["name"]: p.get("componentType", p["type"]) for p in props}


def _values(contents: dict[str, bytes], name: str) -> dict[str, Any]:
    """A property's value for each object, by its source id, over every tile."""
    out = {}
    for data in contents.values():
        ids = property_column(data, "id")
        ident = next(
            k
            for k, p in read_glb(data)[0]["extensions"]["EXT_structural_metadata"]["schema"][
                "classes"
            ]["cityobject"]["properties"].items()
            if p["name"] == name
        )
        out.update(zip(ids, property_column(data, ident), strict=True))
    return out


@pytest.fixture
def mixed(new_database: Callable[[], Engine], tmp_path: Path) -> tuple[Engine, TestClient]:
    engine = new_database()
    ingest_files(engine, [_city_json(tmp_path / "a.city.json", A)], "mixed")
    return engine, TestClient(create_app(engine=engine))


def test_one_type_per_property_over_the_whole_city(
    mixed: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    engine, client = mixed
    before = _tiles(client, "mixed")
    assert len(before) == 3  # one tile per building
    kinds = _kinds(_schema_of(before))
    assert kinds["floors"] == "INT32" and kinds["code"] == "INT32" and kinds["ratio"] == "INT32"
    assert kinds["flag"] == "BOOLEAN" and kinds["ok"] == "BOOLEAN"
    assert kinds["note"] == "STRING" and kinds["attribute_id"] == "STRING"
    assert kinds["id"] == "STRING" and kinds["cim_id"] == "INT32" and kinds["height"] == "FLOAT64"

    ingest_files(engine, [_city_json(tmp_path / "b.city.json", B, shift=3000.0)], "mixed")
    after = _tiles(client, "mixed")
    assert len(after) == 4
    schema = _schema_of(after)  # the same class in every tile, old ones made again
    kinds = _kinds(schema)
    assert kinds["code"] == "STRING"  # a text somewhere: text everywhere
    assert kinds["flag"] == "STRING"  # b1 has no flag, and a boolean cannot mark a gap
    assert kinds["ratio"] == "FLOAT64" and kinds["floors"] == "INT32"
    assert kinds["ok"] == "BOOLEAN"  # true/false on every object still
    assert kinds["tags"] == "STRING"
    props = {p["name"]: p for p in schema["classes"]["cityobject"]["properties"].values()}
    assert props["floors"]["noData"] == -2147483648 and props["note"]["noData"] == TEXT_NODATA
    assert "noData" not in props["ok"] and "noData" not in props["cim_id"]
    assert _values(after, "code") == {"a1": "12", "a2": "13", "a3": "14", "b1": "A-7"}
    assert _values(after, "flag") == {"a1": "true", "a2": "false", "a3": "true", "b1": None}
    assert _values(after, "floors") == {"a1": 3, "a2": 5, "a3": 7, "b1": None}
    assert _values(after, "ratio") == {"a1": 1.0, "a2": 2.0, "a3": 3.0, "b1": 2.5}
    assert _values(after, "note") == dict.fromkeys(["a1", "a2", "a3", "b1"])  # empty: no value
    assert _values(after, "tags") == {"a1": None, "a2": None, "a3": None, "b1": '["old","listed"]'}
    assert _values(after, "ok") == {"a1": True, "a2": False, "a3": True, "b1": True}
    assert _values(after, "attribute_id")["a1"] == "x"
    # every tile's table has every property; "note" is empty in each, and still valid
    for data in after.values():
        table = read_glb(data)[0]["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
        assert set(table["properties"]) == set(schema["classes"]["cityobject"]["properties"])
    # 3D Tiles 1.0 batch tables follow the same types
    batch: dict[str, dict[str, Any]] = {}
    for data in _tiles(client, "mixed", "1.0").values():
        _, table, _ = _read_b3dm(data)
        for n, source in enumerate(table["id"]):
            batch[source] = {k: v[n] for k, v in table.items()}
    assert {k: v["code"] for k, v in batch.items()} == {
        "a1": "12",
        "a2": "13",
        "a3": "14",
        "b1": "A-7",
    }
    assert batch["a1"]["flag"] == "true" and batch["b1"]["ratio"] == 2.5
    assert batch["a1"]["ratio"] == 1.0 and "flag" not in batch["b1"]  # none in its tile
    assert_served_tilesets_valid(engine, ["mixed"], tmp_path / "served")


def test_the_schema_is_decided_once_per_generation(
    mixed: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    """Tile requests look up the city's dataset ids only: the statistics are measured once per
    dataset and kept, the schema decided once per set of datasets; a replaced or deleted
    dataset's statistics go."""
    engine, _ = mixed
    service = TileService(engine)
    keys = list(_keys(service, "mixed"))
    for _ in range(3):
        for key in keys:
            service.tile("mixed", key)
    assert service.schemas.decided == 1
    assert _stats_rows(engine) == 1
    other = TileService(engine)  # another process: reads the kept statistics, measures nothing
    other.tile("mixed", keys[0])
    assert other.schemas.decided == 1 and _stats_rows(engine) == 1
    ingest_files(engine, [_city_json(tmp_path / "b.city.json", B, shift=3000.0)], "mixed")
    for key in _keys(service, "mixed"):
        service.tile("mixed", key)
    assert service.schemas.decided == 2 and _stats_rows(engine) == 2
    ingest_files(engine, [_city_json(tmp_path / "b.city.json", B, shift=3000.0)], "mixed")
    service.tile("mixed", keys[0])  # b replaced: a new dataset id, measured; the old one goes
    assert service.schemas.decided == 3 and _stats_rows(engine) == 2


def _keys(service: TileService, city: str) -> list[tuple[int, int, int]]:
    from tiles.service import content_keys

    return content_keys(service.tileset(city))


def _stats_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM tile_property_stats")).scalar_one())


def _python_stats(engine: Engine, city: str, dataset_id: int) -> dict[str, KeyStats]:
    """Each attribute's statistics from the attributes as Python reads them (as a tile does)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT attributes::text FROM city_object WHERE city_code = :c"
                " AND dataset_id = :d AND tile_level IS NOT NULL"
            ),
            {"c": city, "d": dataset_id},
        ).scalars()
        attributes = [orjson.loads(r) for r in rows]
    keys = sorted(set().union(*attributes))
    return {k: KeyStats.of(a.get(k) for a in attributes) for k in keys}


@pytest.mark.parametrize(
    "path",
    [
        next(p for p in FILES if p.name == "delft.city.json"),
        next(p for p in FOOTPRINTS if p.name == "shanghai_osm_buildings_4326.geojson"),
        next(p for p in FOOTPRINTS if p.name == "buildings_lyon1.geojson"),
    ],
    ids=lambda p: p.name,
)
def test_measured_statistics_are_what_the_tiles_read(
    new_database: Callable[[], Engine], path: Path
) -> None:
    """The database's measure of a real file's attributes (one SQL aggregate) equals what the
    tile writer reads from them, kind by kind: the types it decides fit every value."""
    engine = new_database()
    ingest_files(engine, [path], "real")
    with engine.connect() as conn:
        [dataset_id] = conn.execute(text("SELECT id FROM dataset")).scalars()
        measured = measure(conn, "real", dataset_id)
    python = _python_stats(engine, "real", dataset_id)
    assert dict(measured.keys) == python
    assert measured.objects > 0
    schema = decide([measured])
    assert len(schema.properties) == 4 + len(python)


def test_the_type_rule() -> None:
    """The rule on statistics alone: 10 objects."""
    assert kind_of(KeyStats.of([1, 2, None]), 10) == "INT32"
    assert kind_of(KeyStats.of([1, 2.5]), 10) == "FLOAT64"
    assert kind_of(KeyStats.of([2**31, 1]), 10) == "FLOAT64"  # beyond INT32
    assert kind_of(KeyStats.of([-(2**31)]), 10) == "FLOAT64"  # INT32's noData is never a value
    assert kind_of(KeyStats.of([1, "1"]), 10) == "STRING"
    assert kind_of(KeyStats.of([1, True]), 10) == "STRING"
    assert kind_of(KeyStats.of([True] * 10), 10) == "BOOLEAN"
    assert kind_of(KeyStats.of([True] * 9), 10) == "STRING"  # one object without: text
    assert kind_of(KeyStats.of([{"a": 1}]), 10) == "STRING"
    assert kind_of(KeyStats.of([None]), 10) == "STRING"
    merged = decide(
        [
            DatasetStats(2, keys={"n": KeyStats.of([1, 2]), "id": KeyStats.of(["x", "y"])}),
            DatasetStats(1, keys={"n": KeyStats.of(["three"])}),
        ]
    )
    by_name = {p.name: p for p in merged.properties}
    assert by_name["n"].kind == "STRING"
    assert by_name["attribute_id"].kind == "STRING" and by_name["attribute_id"].gaps
    assert merged.names == {"n": "n", "id": "attribute_id"}
    again = decide([DatasetStats.from_json(d.to_json()) for d in [DatasetStats(1)]])
    assert again.digest == decide([DatasetStats(1)]).digest
