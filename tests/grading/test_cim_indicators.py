"""The CIM indicators computed in PostGIS equal an independent computation from the source file.

A synthetic demo city (CityJSON 2.0, EPSG:4548) is ingested into a fresh database and
`cim_indicators.compute` runs on it. The test then reads the same CityJSON file with `json`,
places its vertices in UTM zone 50N (EPSG:32650) with pyproj directly from EPSG:4548 (never via
the database or the ingest code) and recomputes every indicator with shapely: the declared area
(here a lon/lat polygon around the GroundSurface footprints' convex hull), grid cells aligned to
the CRS origin, station, sensor and camera points, the road surface and the camera buffers.
Counts must be equal; areas and the derived values equal within tolerances that only allow for
floating-point differences between the two paths (see `AREA_REL` and `UNION_REL`). The evidence
of each result must let anyone rerun its SQL on the same data and get the same inputs, and name
the dataset by the SHA-256 of the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, box
from sqlalchemy import Engine, text

from cim.errors import InvalidInput, NotFound
from demo.city import generate_city
from grading.cim_indicators import AREA_NAMES, Area, Computed, Parameters, compute
from ingest.pipeline import ingest_files

CITY = "370100"
BUILDINGS = 400
SEED = 11
SOURCE_CRS = "EPSG:4548"
METRIC_EPSG = 32650  # UTM zone 50N: Jinan is at 117°E, zone 50 spans 114°E-120°E
DEFAULTS = Parameters()
# The database path is EPSG:4548 -> EPSG:4979 (pyproj, at ingest) -> stored doubles -> EPSG:32650
# (PROJ 9.1 inside PostGIS 3.3); the test goes EPSG:4548 -> EPSG:32650 in one pyproj step (PROJ
# 9.5). Both chain the same projections (CGCS2000 -> WGS 84 is a null "ballpark" offset), so they
# differ only by floating-point rounding: the hull's area agreed to 1.4e-14 relative when this was
# written. AREA_REL, for simple polygons (the hull, a given built-up polygon), keeps a margin of
# four orders of magnitude over that.
AREA_REL = 1e-10
# UNION_REL is for the road union and its intersection with the union of camera buffers: overlays
# also depend on GEOS (3.11 in PostGIS, 3.14 in shapely), whose noding of the reprojected edges
# (shared by adjacent road rectangles, cut by buffer arcs) may differ in the last bits; they
# agreed to 1e-12 relative when this was written, so 1e-8 keeps the same kind of margin.
UNION_REL = 1e-8
# Inputs that are areas are reported rounded to 3 decimals (mm²), values to 4 decimals: the
# comparison with the exact number allows that half unit of rounding on top of the tolerance.
HALF_UNIT_INPUT = 0.5e-3
HALF_UNIT_VALUE = 0.5e-4

Json = dict[str, Any]


# --- the independent computation from the CityJSON file ---------------------------------------


@dataclass(frozen=True)
class Building:
    footprint: MultiPolygon  # GroundSurface polygons, 2D, metric
    lod: float  # best LoD of its geometries


@dataclass(frozen=True)
class Camera:
    at: Point
    public: bool
    radius: float


@dataclass(frozen=True)
class Source:
    """What the indicators read, taken from the CityJSON file and placed in EPSG:32650."""

    buildings: list[Building]
    stations: list[Point]
    cameras: list[Camera]
    lights_smart: list[bool]
    sensors: list[Point]
    roads: list[MultiPolygon]
    lonlat_centre: tuple[float, float]  # centre of the buildings' lon/lat extent


def _vertices(doc: Json, crs: str) -> np.ndarray:
    """The file's vertices, scaled and translated, as 2D coordinates in `crs`."""
    t = doc["transform"]
    xyz = np.asarray(doc["vertices"], dtype=float) * t["scale"] + t["translate"]
    x, y = Transformer.from_crs(SOURCE_CRS, crs, always_xy=True).transform(xyz[:, 0], xyz[:, 1])
    return np.column_stack((x, y))


def _polygon(rings: list[list[int]], xy: np.ndarray) -> Polygon:
    return Polygon(xy[rings[0]], [xy[r] for r in rings[1:]])


def _ground_polygons(geometry: Json, xy: np.ndarray) -> list[Polygon]:
    """The GroundSurface polygons of a Solid's outer shell."""
    assert geometry["type"] == "Solid"
    semantic = geometry["semantics"]
    shell, values = geometry["boundaries"][0], semantic["values"][0]
    return [
        _polygon(rings, xy)
        for rings, v in zip(shell, values, strict=True)
        if v is not None and semantic["surfaces"][v]["type"] == "GroundSurface"
    ]


def _point(geometry: Json, xy: np.ndarray) -> Point:
    assert geometry["type"] == "MultiPoint" and len(geometry["boundaries"]) == 1
    return Point(xy[geometry["boundaries"][0]])


def read_source(path: Path) -> Source:
    """Parse the demo city with `json` and place what the indicators need in EPSG:32650."""
    doc = json.loads(path.read_bytes())
    assert doc["metadata"]["referenceSystem"].endswith("/EPSG/0/4548")
    xy = _vertices(doc, f"EPSG:{METRIC_EPSG}")
    lonlat = _vertices(doc, "EPSG:4326")
    buildings, stations, cameras, lights, sensors, roads = [], [], [], [], [], []
    building_vertices: list[int] = []
    for obj in doc["CityObjects"].values():
        kind, attrs, geoms = obj["type"], obj.get("attributes", {}), obj.get("geometry", [])
        if kind == "Building":
            assert len(geoms) == 1 and not obj.get("children")
            ground = _ground_polygons(geoms[0], xy)
            assert ground, "every demo building has a GroundSurface"
            buildings.append(Building(MultiPolygon(ground), float(geoms[0]["lod"])))
            building_vertices += [i for s in geoms[0]["boundaries"][0] for r in s for i in r]
        elif kind == "Road":
            assert len(geoms) == 1 and geoms[0]["type"] == "MultiSurface"
            roads.append(MultiPolygon([_polygon(s, xy) for s in geoms[0]["boundaries"]]))
        elif attrs.get("function") == "5g_base_station":
            stations.append(_point(geoms[0], xy))
        elif attrs.get("function") == "cctv_camera":
            public, radius = attrs["publicArea"], attrs.get("coverageRadius")
            assert isinstance(public, bool)  # so `public` is exactly the SQL's 'true' test
            if not isinstance(radius, int | float) or isinstance(radius, bool):
                radius = DEFAULTS.camera_radius_m
            cameras.append(Camera(_point(geoms[0], xy), public, float(radius)))
        elif attrs.get("function") == "street_light":
            assert isinstance(attrs["smart"], bool)
            lights.append(attrs["smart"])
            _point(geoms[0], xy)  # a street light is one point too
        elif attrs.get("function") == "iot_sensor":
            sensors.append(_point(geoms[0], xy))
    ll = lonlat[building_vertices]
    centre = ((ll[:, 0].min() + ll[:, 0].max()) / 2, (ll[:, 1].min() + ll[:, 1].max()) / 2)
    return Source(buildings, stations, cameras, lights, sensors, roads, centre)


def utm_zone_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone holding a point (zones are 6° wide from 180°W)."""
    return (32600 if lat >= 0 else 32700) + min(60, math.floor((lon + 180.0) / 6.0) + 1)


def hull(source: Source) -> Polygon:
    """The convex hull of all building footprints."""
    return shapely.GeometryCollection([b.footprint for b in source.buildings]).convex_hull


def declared(corners: list[tuple[float, float]]) -> tuple[Area, Polygon]:
    """A polygon given by metric corners as the module receives an area (lon/lat GeoJSON, 7
    decimals), and the same polygon as the test sees it (those lon/lat back in EPSG:32650)."""
    to_lonlat = Transformer.from_crs(f"EPSG:{METRIC_EPSG}", "EPSG:4326", always_xy=True)
    to_metric = Transformer.from_crs("EPSG:4326", f"EPSG:{METRIC_EPSG}", always_xy=True)
    ring = [tuple(round(c, 7) for c in to_lonlat.transform(x, y)) for x, y in corners]
    geojson = {"type": "Polygon", "coordinates": [[list(c) for c in [*ring, ring[0]]]]}
    about = {"file": "test-area.geojson", "sha256": "0" * 64}
    return Area(json.dumps(geojson), about), Polygon([to_metric.transform(*c) for c in ring])


def grid_cells(area: Polygon, size: float) -> set[tuple[int, int]]:
    """Indices (i, j) of the cells [i*size, (i+1)*size) x [j*size, (j+1)*size) meeting `area`."""
    x0, y0, x1, y1 = area.bounds
    return {
        (i, j)
        for i in range(math.floor(x0 / size), math.floor(x1 / size) + 1)
        for j in range(math.floor(y0 / size), math.floor(y1 / size) + 1)
        if box(i * size, j * size, (i + 1) * size, (j + 1) * size).intersects(area)
    }


def model_coverage(source: Source, area: Polygon, size: float) -> dict[str, Any]:
    cells = grid_cells(area, size)
    holding = {
        (math.floor(c.x / size), math.floor(c.y / size))
        for b in source.buildings
        if b.lod >= 1
        for c in [b.footprint.centroid]
    }
    return {"cells": len(cells), "covered": len(cells & holding), "area_m2": area.area}


def inside(points: list[Point], area: Polygon) -> int:
    return sum(area.intersects(p) for p in points)


def g5_building_coverage(source: Source, radius: float) -> dict[str, Any]:
    covered = sum(
        any(s.distance(b.footprint.centroid) <= radius for s in source.stations)
        for b in source.buildings
    )
    return {"buildings": len(source.buildings), "covered": covered}


def camera_coverage(source: Source) -> dict[str, Any]:
    roads = shapely.union_all([shapely.make_valid(r) for r in source.roads])
    public = [c for c in source.cameras if c.public]
    seen = shapely.union_all([c.at.buffer(c.radius, quad_segs=8) for c in public])
    return {
        "road_m2": roads.area,
        "seen_m2": roads.intersection(seen).area,
        "cameras": len(public),
    }


def expected_inputs(source: Source, area: Polygon, p: Parameters) -> dict[str, dict[str, Any]]:
    """Every indicator's inputs, as the module's docstring defines them."""
    return {
        "model_coverage": model_coverage(source, area, p.cell_size_m),
        "lod2_share": {
            "buildings": len(source.buildings),
            "lod2": sum(b.lod >= 2 for b in source.buildings),
        },
        "g5_density": {"stations": inside(source.stations, area), "area_m2": area.area},
        "g5_building_coverage": g5_building_coverage(source, p.g5_radius_m),
        "camera_coverage": camera_coverage(source),
        "smart_light_ratio": {
            "lights": len(source.lights_smart),
            "smart": sum(source.lights_smart),
        },
        "iot_density": {"sensors": inside(source.sensors, area), "area_m2": area.area},
    }


def expected_value(name: str, r: dict[str, Any]) -> Any:
    """The unrounded indicator value from its inputs (percentages, counts per km²)."""
    ratio = {
        "model_coverage": ("covered", "cells"),
        "lod2_share": ("lod2", "buildings"),
        "g5_building_coverage": ("covered", "buildings"),
        "camera_coverage": ("seen_m2", "road_m2"),
        "smart_light_ratio": ("smart", "lights"),
    }
    if name in ratio:
        part, whole = ratio[name]
        return 100.0 * r[part] / r[whole]
    assert name in ("g5_density", "iot_density")
    return r["stations" if name == "g5_density" else "sensors"] / (r["area_m2"] / 1e6)


# --- comparisons -----------------------------------------------------------------------------


def close(got: float, want: float, rel: float, rounding: float) -> bool:
    """`got` is `want` rounded to `rounding`'s unit, give or take `rel` of `want`."""
    return abs(got - want) <= rounding + rel * abs(want)


def assert_inputs_equal(name: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    """Counts exactly; areas (reported to the mm², i.e. 3 decimals) within the tolerance."""
    assert set(got) == set(want), name
    rel = UNION_REL if name == "camera_coverage" else AREA_REL
    for key, value in want.items():
        if isinstance(value, float):
            assert close(got[key], value, rel, HALF_UNIT_INPUT), (name, key, got[key], value)
        else:
            assert got[key] == value, f"{name}.{key}"


def assert_value_equal(result: Computed, want: dict[str, Any]) -> None:
    exact = expected_value(result.name, want)
    if any(isinstance(v, float) for v in want.values()):
        rel = UNION_REL if result.name == "camera_coverage" else AREA_REL
        assert close(result.value, exact, rel, HALF_UNIT_VALUE), (result.name, result.value, exact)
    else:  # a ratio of counts: exactly the rounded ratio
        assert result.value == round(exact, 4), result.name


def by_name(results: list[Computed]) -> dict[str, Computed]:
    return {r.name: r for r in results}


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    summary = generate_city(
        tmp_path_factory.mktemp("cim") / "demo.city.json", buildings=BUILDINGS, seed=SEED
    )
    assert summary.counts["Building"] == BUILDINGS
    return summary.path


@pytest.fixture(scope="module")
def city_engine(new_database: Callable[[], Engine], city_path: Path) -> Engine:
    """One database holding the demo city, shared by the tests of this module."""
    engine = new_database()
    ingest_files(engine, [city_path], CITY)
    return engine


@pytest.fixture(scope="module")
def source(city_path: Path) -> Source:
    return read_source(city_path)


@pytest.fixture(scope="module")
def area(source: Source) -> tuple[Area, Polygon]:
    """The city's area: its buildings' hull, 30 m wider, as a declared polygon."""
    return declared(list(hull(source).buffer(30, join_style="mitre").exterior.coords)[:-1])


@pytest.fixture(scope="module")
def results(city_engine: Engine, area: tuple[Area, Polygon]) -> dict[str, Computed]:
    return by_name(compute(city_engine, CITY, Parameters(metric_crs=METRIC_EPSG), area=area[0]))


# --- tests -----------------------------------------------------------------------------------


def test_source_is_placed_at_jinan(source: Source) -> None:
    """Sanity of the independent path: EPSG:4548 x/y are easting/northing without zone prefix."""
    lon, lat = source.lonlat_centre
    assert lon == pytest.approx(117.02, abs=0.01) and lat == pytest.approx(36.66, abs=0.01)
    c = hull(source).centroid
    assert 495_000 < c.x < 510_000 and 4_050_000 < c.y < 4_065_000
    assert len(source.buildings) == BUILDINGS
    assert source.stations and source.sensors and source.lights_smart and source.roads
    assert any(c.public for c in source.cameras) and not all(c.public for c in source.cameras)


def test_every_indicator_equals_shapely_from_the_file(
    results: dict[str, Computed], source: Source, area: tuple[Area, Polygon]
) -> None:
    want = expected_inputs(source, area[1], DEFAULTS)
    assert set(results) == set(want)
    for name, result in results.items():
        assert_inputs_equal(name, result.inputs, want[name])
        assert_value_equal(result, want[name])
    # the city has every layer, so no indicator is vacuous
    assert 0 < want["model_coverage"]["covered"] < want["model_coverage"]["cells"]
    assert 0 < want["g5_building_coverage"]["covered"] < BUILDINGS
    assert 0 < want["camera_coverage"]["seen_m2"] < want["camera_coverage"]["road_m2"]
    assert 0 < want["smart_light_ratio"]["smart"] < want["smart_light_ratio"]["lights"]
    assert results["lod2_share"].value == 100.0
    assert {r.unit for n, r in results.items() if n.endswith("_density")} == {"/km²"}


def test_default_metric_crs_is_the_utm_zone_of_the_centre(
    city_engine: Engine, results: dict[str, Computed], source: Source, area: tuple[Area, Polygon]
) -> None:
    assert utm_zone_epsg(*source.lonlat_centre) == METRIC_EPSG
    default = by_name(compute(city_engine, CITY, area=area[0]))
    for name, result in default.items():
        assert result.evidence["parameters"]["srid"] == METRIC_EPSG
        assert (result.value, result.inputs) == (results[name].value, results[name].inputs)


def test_evidence_reruns_to_the_same_inputs(
    city_engine: Engine, results: dict[str, Computed], city_path: Path, area: tuple[Area, Polygon]
) -> None:
    sha256 = hashlib.sha256(city_path.read_bytes()).hexdigest()
    for name, result in results.items():
        ev = result.evidence
        assert (ev["indicator"], ev["value"], ev["unit"]) == (name, result.value, result.unit)
        assert ev["inputs"] == result.inputs
        params = ev["parameters"]
        assert params["srid"] == METRIC_EPSG and params["city"] == CITY
        if name in AREA_NAMES:  # the area by its file and the digest of the GeoJSON bound
            digest = hashlib.sha256(area[0].geojson.encode()).hexdigest()
            assert params["area"] == {**area[0].about, "geojson_sha256": digest}
            params = {**params, "area": area[0].geojson}
        else:
            assert params["area"] is None
        assert params["cell_size_m"] == DEFAULTS.cell_size_m
        assert params["g5_radius_m"] == DEFAULTS.g5_radius_m
        assert params["camera_radius_m"] == DEFAULTS.camera_radius_m
        assert params["g5_value"] == "5g_base_station"
        assert ev["model"]["city"] == CITY
        [dataset] = ev["model"]["datasets"]
        assert dataset["sha256"] == sha256
        query = ev["query"]
        assert ("ST_GeomFromGeoJSON(:area)" in query) == (name in AREA_NAMES)
        with city_engine.connect() as conn:
            row = conn.execute(text(query), params).mappings().one()
        rerun = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
        assert rerun == result.inputs, name


def test_a_smaller_area_changes_densities_as_shapely_predicts(
    city_engine: Engine, results: dict[str, Computed], source: Source
) -> None:
    """A rectangle over the western half of the city: the area-based indicators follow it,
    the others do not move."""
    x0, y0, x1, y1 = hull(source).bounds
    corners = [(x0 - 20, y0 - 20), ((x0 + x1) / 2, y0 - 20), ((x0 + x1) / 2, y1 + 20)]
    west, polygon = declared([*corners, (x0 - 20, y1 + 20)])
    p = Parameters(metric_crs=METRIC_EPSG)
    given = by_name(compute(city_engine, CITY, p, area=west))
    want = expected_inputs(source, polygon, p)
    assert 0 < want["g5_density"]["stations"] < len(source.stations)
    assert 0 < want["iot_density"]["sensors"] < len(source.sensors)
    for name in AREA_NAMES:
        assert_inputs_equal(name, given[name].inputs, want[name])
        assert_value_equal(given[name], want[name])
        assert given[name].inputs != results[name].inputs, f"{name} ignored the area"
    assert given["model_coverage"].inputs["area_m2"] < 0.6 * results["g5_density"].inputs["area_m2"]
    for name in ("lod2_share", "g5_building_coverage", "camera_coverage", "smart_light_ratio"):
        assert (given[name].value, given[name].inputs) == (
            results[name].value,
            results[name].inputs,
        )


def test_no_area_no_area_based_indicator(city_engine: Engine, source: Source) -> None:
    """Without a declared area the area-based indicators refuse; the others need none. An area
    that holds none of the buildings (another city's boundary, a wrong CRS) is refused too."""
    with pytest.raises(InvalidInput, match="model_coverage, g5_density, iot_density are computed"):
        compute(city_engine, CITY)
    alone = by_name(compute(city_engine, CITY, names=("lod2_share", "smart_light_ratio")))
    assert set(alone) == {"lod2_share", "smart_light_ratio"}
    x0, y0, x1, y1 = hull(source).bounds
    away = [(x1 + 5000, y0), (x1 + 6000, y0), (x1 + 6000, y1), (x1 + 5000, y1)]
    with pytest.raises(InvalidInput, match=f"holds none of the {BUILDINGS} buildings"):
        compute(city_engine, CITY, names=("g5_density",), area=declared(away)[0])


def test_unknown_city_is_not_found(city_engine: Engine) -> None:
    with pytest.raises(NotFound, match="no city '999999'"):
        compute(city_engine, "999999", names=("lod2_share",))
