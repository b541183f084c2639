"""Model indicators over the right area, and a CIM platform with evidence (issue 12, point 6).

The area a city's coverage and densities are computed over is a file the committee supplies
(kept with its SHA-256), read in the CRS it names, checked, and shown wherever a value computed
over it appears; without one those indicators refuse, saying what to supply. "CIM platform in
place" is the seven function groups of CJJ/T 315-2022 §4.3.2, each declared with evidence.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely.geometry import Polygon
from sqlalchemy import Engine

from api.app import create_app
from cim.errors import Conflict, Forbidden, InvalidInput
from cim.settings import ApiSettings
from demo.city import generate_city
from demo.round import BUILT_UP, PLATFORM
from grading import access, computed, outcome, rounds, values
from grading.areas import declare_area, list_areas, read_boundary
from grading.evidence import EvidenceFile
from grading.platform import FUNCTION_GROUPS, declare_function, withdraw_function
from grading.report import render_html
from ingest.pipeline import ingest_files
from tests.grading.one_city import one_city_round

ROUND = "area-2026"
CITY = "370100"
GK = "EPSG:4548"  # CGCS2000 / 3-degree Gauss-Kruger CM 117E, the demo file's CRS


def _gk_ring() -> list[tuple[float, float]]:
    doc = json.loads(BUILT_UP.read_bytes())
    return [tuple(c) for c in doc["features"][0]["geometry"]["coordinates"][0]]


def _geojson(coords: list[Any], geometry: str = "Polygon", crs: str | None = None) -> bytes:
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": {"type": geometry, "coordinates": c}}
            for c in coords
        ],
    }
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc).encode()


# --- reading the committee's file -----------------------------------------------------------


def test_the_demo_file_is_read_in_the_crs_it_names() -> None:
    """Its size equals the polygon's area computed apart: in the Gauss-Kruger plane, corrected
    by the projection's scale (k0 = 1 on its central meridian, 117°E; the city is at 117.02°E),
    which agrees with the ellipsoidal area to well under 0.1 %."""
    b = read_boundary(BUILT_UP.read_bytes(), BUILT_UP.name)
    assert (b.source_crs, b.features) == (GK, 1)
    planar_km2 = Polygon(_gk_ring()).area / 1e6
    assert b.area_km2 == pytest.approx(planar_km2, rel=1e-3)
    lon, lat = b.geom.centroid.coords[0]
    assert lon == pytest.approx(117.02, abs=0.005) and lat == pytest.approx(36.66, abs=0.005)


def test_projected_coordinates_without_a_crs_are_refused_unless_named() -> None:
    ring = [list(c) for c in _gk_ring()]
    bare = _geojson([[ring]])
    with pytest.raises(InvalidInput, match=r"are not positions in EPSG:4326.*name it"):
        read_boundary(bare, "bare.geojson")
    named = read_boundary(bare, "bare.geojson", crs=GK)
    assert named.area_km2 == read_boundary(BUILT_UP.read_bytes(), BUILT_UP.name).area_km2
    with pytest.raises(InvalidInput, match="declares EPSG:4548, but EPSG:4547 was given"):
        read_boundary(BUILT_UP.read_bytes(), BUILT_UP.name, crs="EPSG:4547")


def test_a_place_outside_the_crs_area_of_use_is_refused() -> None:
    """Lon/lat of Ürümqi (87.6°E) labelled as the Jinan Gauss-Kruger zone (115.5-118.5°E)."""
    to_gk87 = Transformer.from_crs(4326, 4534, always_xy=True)  # CGCS2000 GK CM 87E
    ring = [list(to_gk87.transform(87.6 + dx, 43.8 + dy)) for dx, dy in [(0, 0), (0.05, 0),
            (0.05, 0.05), (0, 0.05), (0, 0)]]  # fmt: skip
    with pytest.raises(InvalidInput, match="outside the area of use of EPSG:4548"):
        read_boundary(_geojson([[ring]], crs="urn:ogc:def:crs:EPSG::4548"), "wrong.geojson")


def test_bad_geometries_are_refused_naming_the_feature() -> None:
    square = [[117.0, 36.6], [117.1, 36.6], [117.1, 36.7], [117.0, 36.7], [117.0, 36.6]]
    bowtie = [[117.0, 36.6], [117.1, 36.7], [117.1, 36.6], [117.0, 36.7], [117.0, 36.6]]
    with pytest.raises(InvalidInput, match=r"b.geojson, feature 2: not a valid polygon \(Self-"):
        read_boundary(_geojson([[square], [bowtie]]), "b.geojson")
    with pytest.raises(InvalidInput, match="feature 1: a LineString, not a polygon"):
        read_boundary(_geojson([square], "LineString"), "l.geojson")
    with pytest.raises(InvalidInput, match="not a readable vector file"):
        read_boundary(b"name,geometry\n", "x.geojson")
    tiny = [[[117.0, 36.6], [117.0001, 36.6], [117.0001, 36.6001], [117.0, 36.6]]]
    with pytest.raises(InvalidInput, match="smaller than any city"):
        read_boundary(_geojson([tiny]), "tiny.geojson")
    huge = [[[70.0, 10.0], [130.0, 10.0], [130.0, 50.0], [70.0, 50.0], [70.0, 10.0]]]
    with pytest.raises(InvalidInput, match="larger than any city"):
        read_boundary(_geojson([huge]), "china.geojson")


def test_heights_in_a_boundary_are_dropped() -> None:
    """KML with altitudes, PolygonZ Shapefiles, GeoJSON with a third coordinate: the same area."""
    flat = read_boundary(BUILT_UP.read_bytes(), BUILT_UP.name)
    doc = json.loads(BUILT_UP.read_bytes())
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    doc["features"][0]["geometry"]["coordinates"][0] = [[x, y, 35.5] for x, y in ring]
    high = read_boundary(json.dumps(doc).encode(), "with-heights.geojson")
    assert high.area_km2 == flat.area_km2 and not high.geom.has_z
    to_lonlat = Transformer.from_crs(4548, 4326, always_xy=True)
    coords = " ".join(f"{x},{y},120" for x, y in (to_lonlat.transform(*p) for p in ring))
    kml = (
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
        "<Placemark><name>建成区</name><Polygon><altitudeMode>absolute</altitudeMode>"
        f"<outerBoundaryIs><LinearRing><coordinates>{coords}</coordinates></LinearRing>"
        "</outerBoundaryIs></Polygon></Placemark></kml>"
    )
    from_kml = read_boundary(kml.encode(), "建成区.kml")
    assert from_kml.area_km2 == pytest.approx(flat.area_km2, rel=1e-6)


def test_several_features_and_other_formats(tmp_path: Path) -> None:
    """Two districts in a GeoPackage and a zipped Shapefile (each naming EPSG:4548): the area is
    their union, the same in every format."""
    ring = np.asarray(_gk_ring())
    cx = ring[:, 0].mean()
    left = shapely.clip_by_rect(Polygon(ring), -1e9, -1e9, cx, 1e9)
    right = shapely.clip_by_rect(Polygon(ring), cx, -1e9, 1e9, 1e9)
    whole = read_boundary(BUILT_UP.read_bytes(), BUILT_UP.name).area_km2
    for suffix, driver in ((".gpkg", "GPKG"), (".shp", "ESRI Shapefile")):
        path = tmp_path / f"districts{suffix}"
        pyogrio.raw.write(
            str(path),
            np.array([shapely.to_wkb(left), shapely.to_wkb(right)], dtype=object),
            [np.array(["west", "east"], dtype=object)],
            ["name"],
            geometry_type="Polygon",
            crs=GK,
            driver=driver,
        )
        if suffix == ".shp":
            data = io.BytesIO()
            with zipfile.ZipFile(data, "w") as z:
                for part in tmp_path.glob("districts.*"):
                    if part.suffix != ".gpkg":
                        z.write(part, part.name)
            content, name = data.getvalue(), "districts.zip"
        else:
            content, name = path.read_bytes(), path.name
        b = read_boundary(content, name)
        assert (b.source_crs, b.features) == (GK, 2), name
        assert b.area_km2 == pytest.approx(whole, rel=1e-6), name


# --- a round ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = new_database()
    city = generate_city(tmp_path_factory.mktemp("a") / "c.city.json", buildings=150, seed=5)
    ingest_files(engine, [city.path], CITY, city_name_zh="济南市")
    one_city_round(engine, ROUND, CITY, access.cli_actor("王委员"))
    return engine


ADMIN = access.cli_actor("王委员")
ASSESSOR = access.Actor("key:jinan", "assessor", (CITY,), (ROUND,))
REVIEWER = access.Actor("key:reviewer", "reviewer")


def _file(path: Path, media: str = "application/octet-stream") -> EvidenceFile:
    return EvidenceFile(path.name, path.read_bytes(), media)


def test_no_area_and_no_platform_refuse_saying_what_to_supply(db: Engine) -> None:
    before = values.entered(db, ROUND)
    with pytest.raises(InvalidInput) as refused:
        computed.enter_cim_indicators(db, ADMIN, ROUND, CITY)
    why = str(refused.value)
    assert "g5_density, iot_density, model_coverage are computed over" in why
    assert f"cim grade area declare {ROUND} --city {CITY} FILE" in why
    assert "declared none of the seven function groups" in why
    assert values.entered(db, ROUND) == before  # nothing half-written
    # what needs neither is computed on request
    done = computed.enter_cim_indicators(db, ADMIN, ROUND, CITY, only=("sheshi.lod2",))
    assert [(i, c.value) for i, c in done] == [("sheshi.lod2", 100.0)]


def test_only_the_committee_declares_an_area_and_only_in_a_draft(db: Engine) -> None:
    with pytest.raises(Forbidden, match="needs admin"):
        declare_area(db, ASSESSOR, ROUND, CITY, _file(BUILT_UP), "built_up", "mine")
    with pytest.raises(InvalidInput, match="needs its reason"):
        declare_area(db, ADMIN, ROUND, CITY, _file(BUILT_UP), "built_up", " ")
    with pytest.raises(InvalidInput, match="administrative or built_up, not .urban."):
        declare_area(db, ADMIN, ROUND, CITY, _file(BUILT_UP), "urban", "r")
    assert list_areas(db, ROUND) == []


def test_values_over_the_declared_area_say_which_area(db: Engine) -> None:
    area = declare_area(
        db, ADMIN, ROUND, CITY, _file(BUILT_UP), "built_up", "委员会提供", name="示例城区建成区"
    )
    sha = hashlib.sha256(BUILT_UP.read_bytes()).hexdigest()
    assert (area.evidence_sha256, area.area_km2, area.declared_by) == (sha, 7.882, ADMIN.name)
    entry = access.audit_log(db, ROUND)[-1]
    assert (entry["action"], entry["target"], entry["old"]) == ("area.declare", CITY, None)
    assert entry["new"]["sha256"] == sha and entry["new"]["area_km2"] == 7.882
    done = dict(computed.enter_cim_indicators(db, ADMIN, ROUND, CITY, only=("sheshi.iot",)))
    iot = done["sheshi.iot"]
    # the density is over the declared 7.882 km², not over the buildings' hull
    assert iot.inputs["area_m2"] == pytest.approx(7.882e6, rel=1e-3)
    assert iot.value == round(iot.inputs["sensors"] / (iot.inputs["area_m2"] / 1e6), 4)
    assert iot.evidence["parameters"]["area"]["sha256"] == sha
    shown = values.entered(db, ROUND)[CITY]["sheshi.iot"]
    assert "示例城区建成区 (built-up area), 7.88 km²" in shown["source"]
    assert sha[:12] in shown["source"] and BUILT_UP.name in shown["source"]
    # ... and in the results, and the report
    scored = outcome.results(db, ROUND).city(CITY).to_dict()
    iot_scored = next(i for i in scored["indicators"] if i["id"] == "sheshi.iot")
    assert "7.88 km²" in iot_scored["source"]
    res, meta = outcome.results(db, ROUND), rounds.get_round(db, ROUND).summary()
    assert "示例城区建成区 (built-up area), 7.88 km²" in render_html(res, meta, "en")
    zh = render_html(res, meta, "zh")
    assert "示例城区建成区" in zh and "7.88" in zh and sha[:12] in zh


def test_the_platform_is_in_place_with_all_seven_groups_each_with_evidence(db: Engine) -> None:
    proof = _file(PLATFORM, "text/plain")
    with pytest.raises(Forbidden, match="reviewers check values"):
        declare_function(db, REVIEWER, ROUND, CITY, "analysis", proof)
    with pytest.raises(InvalidInput, match="unknown platform function group 'gis'"):
        declare_function(db, ASSESSOR, ROUND, CITY, "gis", proof)
    groups = list(FUNCTION_GROUPS)
    for group in groups[:6]:
        assert declare_function(db, ASSESSOR, ROUND, CITY, group, proof, "验收记录")
    assert not declare_function(db, ASSESSOR, ROUND, CITY, groups[0], proof, "验收记录")
    [(_, partial)] = computed.enter_cim_indicators(db, ADMIN, ROUND, CITY, only=("sheshi.cim",))
    assert partial.value is False
    assert partial.inputs == {"offered": 6, "of": 7, "missing": ["development_interfaces"]}
    assert partial.evidence["missing"][0]["name_zh"] == "开发接口"
    sha = hashlib.sha256(PLATFORM.read_bytes()).hexdigest()
    assert {f["evidence_sha256"] for f in partial.evidence["functions"]} == {sha}
    declare_function(db, ASSESSOR, ROUND, CITY, groups[6], sha, "接口文档")  # by its SHA-256
    [(_, full)] = computed.enter_cim_indicators(db, ADMIN, ROUND, CITY, only=("sheshi.cim",))
    assert full.value is True and full.inputs["missing"] == []
    entry = values.entered(db, ROUND)[CITY]["sheshi.cim"]
    assert (
        entry["source"] == "7 of 7 function groups declared with evidence (CJJ/T 315-2022 §4.3.2)"
    )
    withdraw_function(db, ASSESSOR, ROUND, CITY, "analysis", "验收未通过")
    last = access.audit_log(db, ROUND)[-1]
    assert (last["action"], last["target"]) == ("platform.withdraw", f"{CITY}/analysis")
    assert last["new"] == {"reason": "验收未通过"}
    [(_, again)] = computed.enter_cim_indicators(db, ADMIN, ROUND, CITY, only=("sheshi.cim",))
    assert again.value is False and again.inputs["missing"] == ["analysis"]


def test_over_the_api(db: Engine) -> None:
    _, admin = access.create_key(db, ADMIN, "committee", "admin")
    _, jinan = access.create_key(db, ADMIN, "jinan", "assessor", [CITY], [ROUND])
    client = TestClient(create_app(engine=db, settings=ApiSettings(grading_public_drafts=True)))
    base = f"/grading/rounds/{ROUND}/cities/{CITY}"
    body = BUILT_UP.read_bytes()
    url = f"{base}/area?filename=a.geojson&kind=administrative&reason=r"
    assert client.put(url, content=body, headers={"X-API-Key": jinan}).status_code == 403
    bad = client.put(url, content=b'{"type": "Point"}', headers={"X-API-Key": admin})
    assert bad.status_code == 400 and "a.geojson" in bad.json()["detail"]
    ok = client.put(url, content=body, headers={"X-API-Key": admin})
    assert ok.status_code == 200 and ok.json()["kind"] == "administrative"
    feature = client.get(f"{base}/area")
    assert feature.headers["content-type"] == "application/geo+json"
    assert feature.json()["properties"]["area_km2"] == 7.882
    assert feature.json()["geometry"]["type"] == "MultiPolygon"
    listed = client.get(f"/grading/rounds/{ROUND}/areas").json()
    assert [a["city"] for a in listed] == [CITY] and "geometry" not in listed[0]
    functions = client.get(f"{base}/platform-functions").json()
    assert functions["missing"] == ["analysis"] and len(functions["declared"]) == 6
    sha = functions["declared"][0]["evidence_sha256"]
    put = client.put(
        f"{base}/platform-functions/analysis",
        json={"evidence_sha256": sha, "note": "复验通过"},
        headers={"X-API-Key": jinan},
    )
    assert put.status_code == 200 and put.json()["changed"] is True
    gone = client.put(
        f"{base}/platform-functions/analysis",
        json={"evidence_sha256": "f" * 64},
        headers={"X-API-Key": jinan},
    )
    assert gone.status_code == 404 and "upload it first" in gone.json()["detail"]
    dropped = client.delete(
        f"{base}/platform-functions/scene_configuration?reason=重复", headers={"X-API-Key": jinan}
    )
    assert dropped.status_code == 204
    assert client.get(f"{base}/platform-functions").json()["missing"] == ["scene_configuration"]


def test_a_submitted_round_keeps_its_area_and_platform(db: Engine) -> None:
    from grading.exemptions import exempt

    one_city_round(db, "area-sub", CITY, ADMIN)
    exempt(db, ADMIN, "area-sub", CITY, None, "test: only the rule is tested here")
    rounds.move(db, REVIEWER, "area-sub", "submitted", "complete")
    with pytest.raises(Conflict, match="submitted"):
        declare_area(db, ADMIN, "area-sub", CITY, _file(BUILT_UP), "built_up", "late")
    with pytest.raises(Conflict, match="submitted"):
        declare_function(db, ADMIN, "area-sub", CITY, "analysis", _file(PLATFORM))


def test_values_computed_over_a_superseded_area_stop_a_submission(db: Engine) -> None:
    """Declaring the area again, or withdrawing a function group, leaves the values computed
    before resting on what changed: the round is not submitted until they are computed again."""
    from grading.exemptions import exempt

    one_city_round(db, "area-stale", CITY, ADMIN)
    declare_area(db, ADMIN, "area-stale", CITY, _file(BUILT_UP), "built_up", "first")
    proof = _file(PLATFORM, "text/plain")
    for group in FUNCTION_GROUPS:
        declare_function(db, ADMIN, "area-stale", CITY, group, proof)
    only = ("sheshi.iot", "sheshi.cim")
    computed.enter_cim_indicators(db, ADMIN, "area-stale", CITY, only=only)
    exempt(db, ADMIN, "area-stale", CITY, None, "test: the other values are not the point")
    declare_area(db, ADMIN, "area-stale", CITY, _file(BUILT_UP), "administrative", "corrected")
    withdraw_function(db, ADMIN, "area-stale", CITY, "analysis", "not accepted")
    with pytest.raises(Conflict) as refused:
        rounds.move(db, REVIEWER, "area-stale", "submitted", "complete")
    why = str(refused.value)
    assert f"{CITY}/sheshi.iot: the city's area was declared again since" in why
    assert f"{CITY}/sheshi.cim: the platform's function groups changed since" in why
    assert "compute-cim-indicators" in why
    computed.enter_cim_indicators(db, ADMIN, "area-stale", CITY, only=only)
    assert rounds.move(db, REVIEWER, "area-stale", "submitted", "complete").status == "submitted"


def test_one_layer_and_the_citys_own_model(db: Engine, tmp_path: Path) -> None:
    """A GeoPackage of several layers is refused (which one is the area?); an assessor computes
    from its city's own model only."""
    ring = Polygon(_gk_ring())
    path = tmp_path / "two.gpkg"
    for layer in ("built_up", "districts"):
        pyogrio.raw.write(
            str(path),
            np.array([shapely.to_wkb(ring)], dtype=object),
            [],
            [],
            layer=layer,
            geometry_type="Polygon",
            crs=GK,
            driver="GPKG",
            append=path.exists(),
        )
    with pytest.raises(InvalidInput, match=r"two.gpkg holds 2 layers \(built_up, districts\)"):
        read_boundary(path.read_bytes(), path.name)
    with pytest.raises(Forbidden, match="needs admin"):
        computed.enter_cim_indicators(db, ASSESSOR, ROUND, CITY, "370200", only=("sheshi.lod2",))
