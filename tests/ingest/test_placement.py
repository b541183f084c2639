"""Stored coordinates equal pyproj's own transformation of the source coordinates (to 5 cm,
heights included), for a compound CRS, a Chinese Gauss-Kruger CRS and a Swiss CRS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import Engine, text

from ingest.pipeline import ingest_files
from tests.conftest import SHARED
from tests.proj_reference import proj_placement

HERE = Path(__file__).parent
TOLERANCE_M = 0.05


def _to_ecef(lon_lat_h: np.ndarray) -> np.ndarray:
    t = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    x, y, z = t.transform(lon_lat_h[:, 0], lon_lat_h[:, 1], lon_lat_h[:, 2])
    return np.column_stack((x, y, z))


def _first_surface_source(doc: dict, oid: str) -> np.ndarray:
    """Source coordinates of the first ring of the first surface of an object's first geometry."""
    geom = doc["CityObjects"][oid]["geometry"][0]
    b = geom["boundaries"]
    while isinstance(b[0][0], list):  # down to a ring
        b = b[0]
    ring = b[0]
    v = np.array([doc["vertices"][i] for i in ring], dtype=float)
    t = doc.get("transform", {"scale": [1, 1, 1], "translate": [0, 0, 0]})
    return v * np.array(t["scale"]) + np.array(t["translate"])


def _stored_first_ring(engine: Engine, city: str, oid: str) -> np.ndarray:
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT ST_X(d.geom), ST_Y(d.geom), ST_Z(d.geom)
            FROM object_geometry g JOIN city_object o
              ON o.city_code = g.city_code AND o.id = g.object_id,
            LATERAL ST_DumpPoints(ST_ExteriorRing(ST_GeometryN(g.geom, 1))) d
            WHERE o.city_code = :c AND o.source_id = :s AND g.idx = 0
            ORDER BY d.path"""),
            {"c": city, "s": oid},
        ).all()
    return np.array(rows, dtype=float)[:-1]  # drop the closing point


def _assert_placed(engine: Engine, path: Path, crs: str, city: str) -> int:
    doc = json.loads(path.read_text())
    checked = 0
    surfaces = {"MultiSurface", "CompositeSurface", "Solid", "MultiSolid", "CompositeSolid"}
    for oid, obj in list(doc["CityObjects"].items())[:60]:
        if not obj.get("geometry") or obj["geometry"][0]["type"] not in surfaces:
            continue
        src = _first_surface_source(doc, oid)
        expected = _to_ecef(proj_placement(crs, src[:, 0], src[:, 1], src[:, 2]))
        got = _to_ecef(_stored_first_ring(engine, city, oid))
        assert got.shape == expected.shape
        error = np.linalg.norm(got - expected, axis=1).max()
        assert error < TOLERANCE_M, f"{oid}: {error:.3f} m off"
        checked += 1
    return checked


def test_compound_rd_nap_epsg_7415(engine: Engine) -> None:
    path = SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json"
    ingest_files(engine, [path], "delft")
    assert _assert_placed(engine, path, "EPSG:7415", "delft") >= 2


def test_compound_delft_mixed_objects(engine: Engine) -> None:
    path = SHARED / "cityjson/delft_mixed_objects_v2.0/delft.city.json"
    ingest_files(engine, [path], "delft")
    assert _assert_placed(engine, path, "EPSG:7415", "delft") >= 20


def test_swiss_lv95_epsg_2056(engine: Engine) -> None:
    path = HERE / "data/bern_bundesplatz_2056.city.json"
    [report] = ingest_files(engine, [path], "bern")
    assert report.source_crs == "EPSG:2056"
    assert _assert_placed(engine, path, "EPSG:2056", "bern") == 1
    # and it stands where it should: LV95's origin (2600000, 1200000) is the old Bern observatory
    # at 7.43863 E 46.95108 N; the kiosk lies 614 m east and 377 m south of it
    ring = _stored_first_ring(engine, "bern", "bern-kiosk-1")
    assert ring[:, 0].mean() == pytest.approx(7.43863 + 614 / 75_990, abs=3e-4)
    assert ring[:, 1].mean() == pytest.approx(46.95108 - 377 / 111_200, abs=3e-4)


def test_known_point_rd_new_is_shifted_to_wgs84(engine: Engine, tmp_path: Path) -> None:
    """The Amersfoort tower (RD 155000, 463000) lies at 52.15517 N 5.38720 E in WGS 84; a CRS
    shift guessed as zero would put it 110 m away."""
    doc = {
        "type": "CityJSON",
        "version": "2.0",
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/7415"},
        "transform": {"scale": [0.001] * 3, "translate": [155000.0, 463000.0, 0.0]},
        "CityObjects": {
            "tower": {
                "type": "GenericCityObject",
                "geometry": [{"type": "MultiPoint", "lod": "0", "boundaries": [0]}],
            }
        },
        "vertices": [[0, 0, 0]],
    }
    path = tmp_path / "amersfoort.city.json"
    path.write_text(json.dumps(doc))
    ingest_files(engine, [path], "nl")
    with engine.connect() as conn:
        lon, lat = conn.execute(
            text(
                "SELECT ST_X(ST_GeometryN(geom, 1)), ST_Y(ST_GeometryN(geom, 1)) "
                "FROM object_geometry"
            )
        ).one()
    assert lat == pytest.approx(52.155172, abs=2e-6)
    assert lon == pytest.approx(5.387204, abs=3e-6)


def test_demo_city_cgcs2000_gauss_kruger_epsg_4548(engine: Engine, tmp_path: Path) -> None:
    from demo.city import generate_city

    summary = generate_city(tmp_path / "demo.city.json", buildings=300, seed=7)
    [report] = ingest_files(engine, [summary.path], "370100")
    assert report.source_crs == "EPSG:4548"
    assert report.object_count == summary.total
    assert report.counts_by_type == summary.counts
    assert _assert_placed(engine, summary.path, "EPSG:4548", "370100") >= 20
