"""Building footprints with heights (GeoJSON, GeoPackage, Shapefile) through `cim ingest`: every
feature lands as a building (counted here from the files without GDAL), extruded to base +
height with its semantics, or kept as an LoD0 footprint when it has no usable height (and the
report says how many); every attribute is kept; holes and multipolygons survive; positions match
pyproj (EPSG:4549, the CGCS2000 Shanghai footprints)."""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.errors import IngestError
from cli.main import main
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

KOREA = SHARED / "footprints/korea_mago_footprints"
SHANGHAI = SHARED / "footprints/cn_shanghai_osm_buildings"
LYON = SHARED / "footprints/lyon1_bdtopo_buildings/buildings_lyon1.geojson"
FILES = [
    KOREA / "footprint.gpkg",
    KOREA / "footprint.shp",
    KOREA / "footprint-with-height.geojson",
    SHANGHAI / "shanghai_osm_buildings_4326.geojson",
    SHANGHAI / "shanghai_osm_buildings_4490_DERIVED.geojson",
    SHANGHAI / "shanghai_osm_buildings_4549_DERIVED.geojson",
    LYON,
]


def features_in(path: Path) -> int:
    """The number of features, read without GDAL."""
    if path.suffix == ".geojson":
        return len(json.loads(path.read_text(encoding="utf-8"))["features"])
    if path.suffix == ".gpkg":
        with sqlite3.connect(path) as db:
            [(table,)] = db.execute(
                "SELECT table_name FROM gpkg_contents WHERE data_type = 'features'"
            ).fetchall()
            sql = f'SELECT count(*) FROM "{table}"'  # noqa: S608 (a name from the file)
            return int(db.execute(sql).fetchone()[0])
    if path.suffix == ".shp":
        header = path.with_suffix(".dbf").read_bytes()[:8]
        return int(struct.unpack("<I", header[4:8])[0])
    raise AssertionError(path)


def _heights(path: Path) -> list[float | None]:
    return [f["properties"].get("height") for f in json.loads(path.read_text())["features"]]


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    for n, path in enumerate(FILES):
        options = ReadOptions(base_attr="Z_MIN_SOL") if path == LYON else None
        ingest_files(engine, [path], f"f{n}", options=options)
    return engine


@pytest.mark.parametrize("n", range(len(FILES)), ids=[p.name for p in FILES])
def test_every_feature_lands_as_a_building(db: Engine, n: int) -> None:
    with db.connect() as conn:
        types = conn.execute(
            text("SELECT type, count(*) FROM city_object WHERE city_code = :c GROUP BY type"),
            {"c": f"f{n}"},
        ).all()
    assert dict(types) == {"Building": features_in(FILES[n])}


def _rows(engine: Engine, city: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT o.attributes, o.z_min, o.z_max, g.type, g.lod, "
                "g.structure -> 'surface_types', ST_NumGeometries(g.geom) "
                "FROM city_object o JOIN object_geometry g "
                "ON g.city_code = o.city_code AND g.object_id = o.id "
                "WHERE o.city_code = :c ORDER BY o.source_id"
            ),
            {"c": city},
        ).all()


def test_heights_extrude_and_the_rest_stay_footprints(db: Engine) -> None:
    n = FILES.index(KOREA / "footprint-with-height.geojson")
    rows = _rows(db, f"f{n}")
    heights = _heights(FILES[n])
    usable = [h for h in heights if h is not None and h > 0]
    solids = [r for r in rows if r[3] == "Solid"]
    footprints = [r for r in rows if r[3] == "MultiSurface"]
    assert len(solids) == len(usable) and len(footprints) == len(heights) - len(usable)
    for attributes, z_min, z_max, _, lod, semantics, _ in solids:
        assert lod == "1" and z_max - z_min == pytest.approx(attributes["height"], abs=1e-3)
        assert set(semantics) == {"GroundSurface", "RoofSurface", "WallSurface"}
    assert all(r[4] == "0" and r[2] - r[1] < 1e-6 for r in footprints)
    report = ingest_files(db, [FILES[n]], "again")[0]
    assert any(
        w.startswith(f"{len(heights) - len(usable)} features have no usable height in 'height'")
        for w in report.warnings
    )


def test_every_attribute_is_kept(db: Engine) -> None:
    path = SHANGHAI / "shanghai_osm_buildings_4549_DERIVED.geojson"
    stored = {json.dumps(r[0], sort_keys=True) for r in _rows(db, f"f{FILES.index(path)}")}
    for feature in json.loads(path.read_text(encoding="utf-8"))["features"]:
        props = {k: v for k, v in feature["properties"].items() if v is not None}
        assert any(all(json.loads(s).get(k) == v for k, v in props.items()) for s in stored), props


def test_floors_and_base_from_attributes(db: Engine) -> None:
    rows = _rows(db, f"f{FILES.index(LYON)}")
    solid = [r for r in rows if r[3] == "Solid"]
    assert len(solid) == features_in(LYON)  # every Lyon building has HAUTEUR
    for attributes, z_min, z_max, *_ in solid[:200]:
        assert z_min == pytest.approx(attributes["Z_MIN_SOL"], abs=1e-3)
        assert z_max - z_min == pytest.approx(attributes["HAUTEUR"], abs=1e-3)
    report = ingest_files(
        db, [LYON], "floors", options=ReadOptions(floors_attr="NB_ETAGES", storey_height=3.0)
    )[0]
    floors = {r[0]["ID"]: (r[1], r[2], r[0]["NB_ETAGES"]) for r in _rows(db, "floors")}
    checked = 0
    for z_min, z_max, n in floors.values():
        if n and n > 0:
            assert z_max - z_min == pytest.approx(3.0 * n, abs=1e-3)
            checked += 1
    assert checked > 1000
    assert report.counts_by_lod.get("1") == checked


def test_holes_and_multipolygons(engine: Engine, tmp_path: Path) -> None:
    square = [[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]]
    hole = [[5, 5], [5, 15], [15, 15], [15, 5], [5, 5]]
    far = [[40, 0], [50, 0], [50, 10], [40, 10], [40, 0]]
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4549"}},
        "features": [
            {
                "type": "Feature",
                "properties": {"height": 12.5, "名称": "院子"},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [
                            [[x + 500000, y + 3450000] for x, y in square],
                            [[x + 500000, y + 3450000] for x, y in hole],
                        ],
                        [[[x + 500000, y + 3450000] for x, y in far]],
                    ],
                },
            }
        ],
    }
    path = tmp_path / "courtyard.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    [report] = ingest_files(engine, [path], "yard")
    assert report.counts_by_type == {"Building": 1}
    [(attributes, z_min, z_max, gtype, lod, semantics, surfaces)] = _rows(engine, "yard")
    assert attributes == {"height": 12.5, "名称": "院子"} and z_max - z_min == pytest.approx(12.5)
    # two grounds, two roofs, walls: 4 outer + 4 hole edges, and 4 for the second polygon
    assert surfaces == 4 + 12 and semantics.count("WallSurface") == 12
    with engine.connect() as conn:
        area = conn.execute(
            text(
                "SELECT ST_Area(ST_Transform(footprint, 4549)) FROM city_object "
                "WHERE city_code = 'yard'"
            )
        ).scalar_one()
    assert area == pytest.approx(400 - 100 + 100, rel=1e-6)


def test_shanghai_cgcs2000_placement_matches_pyproj(db: Engine) -> None:
    path = SHANGHAI / "shanghai_osm_buildings_4549_DERIVED.geojson"
    feature = json.loads(path.read_text(encoding="utf-8"))["features"][0]
    ring = np.array(feature["geometry"]["coordinates"][0][:-1], dtype=float)
    t = Transformer.from_crs("EPSG:4549", "EPSG:4979", always_xy=True)
    lon, lat, _ = t.transform(ring[:, 0], ring[:, 1], np.zeros(len(ring)))
    with db.connect() as conn:
        points = np.array(
            conn.execute(
                text(
                    "SELECT ST_X(d.geom), ST_Y(d.geom) FROM city_object o, "
                    "ST_DumpPoints(o.footprint) d WHERE o.city_code = :c"
                ),
                {"c": f"f{FILES.index(path)}"},
            ).all()
        )
    for x, y in zip(lon, lat, strict=True):
        d = np.hypot(
            (points[:, 0] - x) * 111320 * np.cos(np.radians(y)), (points[:, 1] - y) * 110540
        )
        assert d.min() < 0.05
    # the same buildings from the WGS 84 original land on the same spots
    original = SHANGHAI / "shanghai_osm_buildings_4326.geojson"
    first = np.array(
        json.loads(original.read_text(encoding="utf-8"))["features"][0]["geometry"]["coordinates"][
            0
        ][0]
    )
    d = np.hypot(
        (points[:, 0] - first[0]) * 111320 * np.cos(np.radians(first[1])),
        (points[:, 1] - first[1]) * 110540,
    )
    assert d.min() < 0.05


def test_mistakes_are_refused_with_the_reason(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="--height-attr 'hauteur' is not a field.*height"):
        ingest_files(
            engine, [KOREA / "footprint.gpkg"], "x", options=ReadOptions(height_attr="hauteur")
        )
    broken = tmp_path / "broken.gpkg"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(IngestError, match="broken.gpkg"):
        ingest_files(engine, [broken], "x")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dataset")).scalar_one() == 0


def test_from_the_command_line(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(
        main, ["ingest", str(LYON), "--city", "lyon", "--floors-attr", "NB_ETAGES", "--json"]
    )
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert report["format"] == "Footprints" and report["object_count"] == features_in(LYON)
