"""The synthetic demo city: exact counts, sound geometry, plausible layers, both formats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pyproj import Transformer

from cim.errors import InvalidInput
from demo.city import DEMO_EPSG, DemoSummary, generate_city

BUILDINGS = 1000
SEED = 7
Json = dict[str, Any]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSummary, Json]:
    """A 1,000-building city as one CityJSON document, with what generate_city said about it."""
    path = tmp_path_factory.mktemp("demo") / "city.city.json"
    summary = generate_city(path, buildings=BUILDINGS, seed=SEED)
    return summary, orjson.loads(path.read_bytes())


@pytest.fixture(scope="module")
def doc(city: tuple[DemoSummary, Json]) -> Json:
    """The parsed document."""
    return city[1]


@pytest.fixture(scope="module")
def local(doc: Json) -> np.ndarray:
    """Vertices in metres relative to the translate (precise enough for geometry checks)."""
    return np.asarray(doc["vertices"], dtype=float) * np.asarray(doc["transform"]["scale"])


def objects_of(doc: Json, kind: str) -> list[tuple[str, Json]]:
    """(id, object) pairs of one CityObject type."""
    return [(oid, o) for oid, o in doc["CityObjects"].items() if o["type"] == kind]


def surfaces_of(geometry: Json) -> Iterator[list[list[int]]]:
    """Every surface (a list of rings) of a MultiSurface or Solid."""
    if geometry["type"] == "MultiSurface":
        yield from geometry["boundaries"]
    elif geometry["type"] == "Solid":
        for shell in geometry["boundaries"]:
            yield from shell


def newell(points: np.ndarray) -> np.ndarray:
    """Newell's normal of a ring; its length is twice the ring's area."""
    nxt = np.roll(points, -1, axis=0)
    return np.array(
        [
            np.sum((points[:, 1] - nxt[:, 1]) * (points[:, 2] + nxt[:, 2])),
            np.sum((points[:, 2] - nxt[:, 2]) * (points[:, 0] + nxt[:, 0])),
            np.sum((points[:, 0] - nxt[:, 0]) * (points[:, 1] + nxt[:, 1])),
        ]
    )


def unit_normal(points: np.ndarray) -> np.ndarray:
    """Newell's normal scaled to length 1."""
    n = newell(points)
    return n / np.linalg.norm(n)


def bbox(points: np.ndarray) -> tuple[float, float, float, float]:
    """2D bounding box of some points."""
    return points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()


def overlapping(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Which of boxes `a` (rows minx, miny, maxx, maxy) overlap which of `b` by more than eps."""
    return (
        (a[:, None, 0] < b[None, :, 2] - eps)
        & (b[None, :, 0] < a[:, None, 2] - eps)
        & (a[:, None, 1] < b[None, :, 3] - eps)
        & (b[None, :, 1] < a[:, None, 3] - eps)
    )


def test_summary_matches_the_file(city: tuple[DemoSummary, Json]) -> None:
    summary, doc = city
    types = Counter(o["type"] for o in doc["CityObjects"].values())
    assert summary.counts["Building"] == types["Building"] == BUILDINGS
    assert summary.counts == dict(types)
    assert summary.total == len(doc["CityObjects"])
    assert summary.vertices == len(doc["vertices"])
    assert summary.format == "cityjson"
    assert {f"BLDG_{k:06d}" for k in range(1, BUILDINGS + 1)} <= doc["CityObjects"].keys()
    assert set(types) <= {
        "Building",
        "Road",
        "SolitaryVegetationObject",
        "WaterBody",
        "PlantCover",
        "GenericCityObject",
        "CityFurniture",
    }
    for o in doc["CityObjects"].values():
        assert len(o["geometry"]) == 1 and isinstance(o["attributes"], dict)


@pytest.mark.parametrize("buildings", [1, 37, 333])
def test_exact_building_count_for_odd_sizes(tmp_path: Path, buildings: int) -> None:
    summary = generate_city(tmp_path / "c.city.json", buildings=buildings, seed=3)
    doc = orjson.loads(summary.path.read_bytes())
    assert Counter(o["type"] for o in doc["CityObjects"].values())["Building"] == buildings
    assert summary.counts["Building"] == buildings


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, doc: Json) -> None:
    again = generate_city(tmp_path / "a.city.json", buildings=BUILDINGS, seed=SEED)
    assert orjson.loads(again.path.read_bytes()) == doc
    twice = generate_city(tmp_path / "b.city.json", buildings=BUILDINGS, seed=SEED)
    assert again.path.read_bytes() == twice.path.read_bytes()
    other = generate_city(tmp_path / "c.city.json", buildings=BUILDINGS, seed=SEED + 1)
    assert other.path.read_bytes() != again.path.read_bytes()


def test_header_and_extent(doc: Json, local: np.ndarray) -> None:
    assert doc["type"] == "CityJSON" and doc["version"] == "2.0"
    meta = doc["metadata"]
    assert meta["referenceSystem"] == "https://www.opengis.net/def/crs/EPSG/0/4548"
    assert "synthetic" in meta["title"]
    assert doc["transform"]["scale"] == [0.001, 0.001, 0.001]
    real = local + np.asarray(doc["transform"]["translate"])
    assert np.allclose(meta["geographicalExtent"][:3], real.min(axis=0), atol=0.001)
    assert np.allclose(meta["geographicalExtent"][3:], real.max(axis=0), atol=0.001)
    assert all(isinstance(c, int) for v in doc["vertices"][:100] for c in v)


def test_coordinates_are_in_jinan(doc: Json) -> None:
    minx, miny, _, maxx, maxy, _ = doc["metadata"]["geographicalExtent"]
    assert 400_000 < minx < maxx < 600_000
    assert 4_000_000 < miny < maxy < 4_100_000
    to_lonlat = Transformer.from_crs(DEMO_EPSG, 4326, always_xy=True)
    lon, lat = to_lonlat.transform((minx + maxx) / 2, (miny + maxy) / 2)
    assert lon == pytest.approx(117.02, abs=0.01) and lat == pytest.approx(36.66, abs=0.01)


def test_every_boundary_is_well_formed(doc: Json) -> None:
    count = len(doc["vertices"])
    for oid, o in doc["CityObjects"].items():
        geometry = o["geometry"][0]
        if geometry["type"] in ("MultiPoint", "GeometryInstance"):
            assert len(geometry["boundaries"]) == 1 and 0 <= geometry["boundaries"][0] < count
            continue
        for surface in surfaces_of(geometry):
            for ring in surface:
                assert all(0 <= i < count for i in ring), oid
                assert len(set(ring)) == len(ring) >= 3, oid
        semantics = geometry.get("semantics")
        if semantics is None:
            continue
        values, boundaries = semantics["values"], geometry["boundaries"]
        assert len(values) == len(boundaries), oid
        if geometry["type"] == "Solid":
            assert [len(v) for v in values] == [len(shell) for shell in boundaries], oid
            values = [v for shell in values for v in shell]
        assert all(0 <= v < len(semantics["surfaces"]) for v in values), oid


def test_buildings_are_closed_outward_and_as_tall_as_they_say(doc: Json, local: np.ndarray) -> None:
    roofs: Counter[str] = Counter()
    for oid, o in objects_of(doc, "Building"):
        geometry, attributes = o["geometry"][0], o["attributes"]
        assert geometry["type"] == "Solid" and geometry["lod"] == "2"
        shell = geometry["boundaries"][0]
        kinds = [
            geometry["semantics"]["surfaces"][v]["type"] for v in geometry["semantics"]["values"][0]
        ]
        edges = Counter(
            (r[k], r[(k + 1) % len(r)]) for s in shell for r in s for k in range(len(r))
        )
        assert all(n == 1 and edges[(b, a)] == 1 for (a, b), n in edges.items()), oid
        points = local[sorted({i for s in shell for r in s for i in r})]
        assert points[:, 2].max() == pytest.approx(attributes["measuredHeight"], abs=0.01), oid
        centre = points[:, :2].mean(axis=0)
        for surface, kind in zip(shell, kinds, strict=True):
            ring = local[surface[0]]
            normal = newell(ring)
            assert np.linalg.norm(normal) > 1.0, oid  # area > 0.5 m²
            nz = normal[2] / np.linalg.norm(normal)
            if kind == "GroundSurface":
                assert np.all(ring[:, 2] == 0.0) and nz < -0.999, oid
            elif kind == "RoofSurface":
                assert nz > 0.1, oid
            else:
                assert abs(nz) < 1e-3, oid
                assert np.dot(normal[:2], ring[:, :2].mean(axis=0) - centre) > 0, oid
        roof_count = {"flat": 1, "gabled": 2, "hipped": 4}[attributes["roofType"]]
        assert kinds.count("RoofSurface") == roof_count and kinds.count("GroundSurface") == 1
        roofs[attributes["roofType"]] += 1
        if attributes["storeysAboveGround"] > 6:
            assert attributes["roofType"] == "flat"
    assert set(roofs) == {"flat", "gabled", "hipped"}
    assert roofs["flat"] > roofs["gabled"] > 20 and roofs["hipped"] > 20


def test_building_attributes_are_typed_and_plausible(doc: Json) -> None:
    functions: Counter[str] = Counter()
    for _, o in objects_of(doc, "Building"):
        a = o["attributes"]
        functions[a["function"]] += 1
        assert isinstance(a["storeysAboveGround"], int) and a["storeysAboveGround"] >= 1
        assert isinstance(a["measuredHeight"], float)
        per_storey = a["measuredHeight"] / a["storeysAboveGround"]
        assert 2.5 < per_storey < (7.0 if a["roofType"] == "flat" else 15.0)
        assert isinstance(a["yearOfConstruction"], int) and 1950 <= a["yearOfConstruction"] <= 2025
        assert a["address"].endswith("号")
    assert functions.most_common(1)[0][0] == "residential"
    assert set(functions) == {
        "residential",
        "commercial",
        "office",
        "industrial",
        "education",
        "healthcare",
        "public",
    }
    assert any("name" in o["attributes"] for _, o in objects_of(doc, "Building"))


def test_footprints_do_not_overlap_each_other_or_roads(doc: Json, local: np.ndarray) -> None:
    boxes = []
    for _, o in objects_of(doc, "Building"):
        geometry = o["geometry"][0]
        ground = geometry["semantics"]["values"][0].index(0)
        boxes.append(bbox(local[geometry["boundaries"][0][ground][0]]))
    footprints = np.asarray(boxes)
    clashes = overlapping(footprints, footprints)
    np.fill_diagonal(clashes, False)
    assert not clashes.any()
    roads = np.asarray(
        [
            bbox(local[s[0]])
            for _, o in objects_of(doc, "Road")
            for s in surfaces_of(o["geometry"][0])
        ]
    )
    assert not overlapping(footprints, roads).any()


def test_roads_water_and_parks_lie_flat_and_face_up(doc: Json, local: np.ndarray) -> None:
    for kind in ("Road", "WaterBody", "PlantCover"):
        for oid, o in objects_of(doc, kind):
            for surface in surfaces_of(o["geometry"][0]):
                outer = local[surface[0]]
                assert np.all(outer[:, 2] == 0.0) and unit_normal(outer)[2] > 0.999, oid
                for hole in surface[1:]:
                    assert unit_normal(local[hole])[2] < -0.999, oid
    roads = objects_of(doc, "Road")
    assert len(roads) > 50
    for oid, o in roads:
        a = o["attributes"]
        assert a["class"] in {"arterial", "collector", "local"} and a["lanes"] in {2, 4, 6}, oid
        assert a["name"].endswith(("路", "街")), oid
        types = {s["type"] for s in o["geometry"][0]["semantics"]["surfaces"]}
        assert types == {"TrafficArea", "AuxiliaryTrafficArea"}
    waters = objects_of(doc, "WaterBody")
    assert "大明湖" in {o["attributes"]["name"] for _, o in waters}
    assert all(
        o["geometry"][0]["semantics"]["surfaces"] == [{"type": "WaterSurface"}] for _, o in waters
    )
    assert all(o["attributes"]["function"] == "park" for _, o in objects_of(doc, "PlantCover"))


def test_trees_instantiate_one_closed_template(doc: Json) -> None:
    templates = doc["geometry-templates"]
    assert len(templates["templates"]) == 1
    template = templates["templates"][0]
    rings = [r for s in template["boundaries"] for r in s]
    edges = Counter((r[k], r[(k + 1) % len(r)]) for r in rings for k in range(len(r)))
    assert all(n == 1 and edges[(b, a)] == 1 for (a, b), n in edges.items())
    assert max(i for r in rings for i in r) < len(templates["vertices-templates"])
    trees = objects_of(doc, "SolitaryVegetationObject")
    assert len(trees) > BUILDINGS / 2
    tallest = max(v[2] for v in templates["vertices-templates"])
    species = set()
    for oid, o in trees:
        geometry = o["geometry"][0]
        assert geometry["type"] == "GeometryInstance" and geometry["template"] == 0
        matrix = np.asarray(geometry["transformationMatrix"]).reshape(4, 4)
        assert matrix[2, 2] * tallest == pytest.approx(o["attributes"]["height"], abs=0.01), oid
        assert np.allclose(matrix[3], [0, 0, 0, 1])
        species.add(o["attributes"]["species"])
    assert {"法桐", "国槐", "柳树"} <= species


def test_point_layers_have_plausible_density(doc: Json, local: np.ndarray) -> None:
    layers: dict[str, list[Json]] = {}
    for oid, o in doc["CityObjects"].items():
        geometry = o["geometry"][0]
        if geometry["type"] == "MultiPoint":
            assert geometry["lod"] == "1" and len(geometry["boundaries"]) == 1
            function = o["attributes"]["function"]
            assert (
                oid.split("_")[0]
                == {
                    "5g_base_station": "5G",
                    "cctv_camera": "CCTV",
                    "street_light": "LIGHT",
                    "iot_sensor": "IOT",
                }[function]
            )
            layers.setdefault(function, []).append(o)
    stations = layers["5g_base_station"]
    assert BUILDINGS / 62 <= len(stations) <= BUILDINGS / 38
    assert all(s["type"] == "GenericCityObject" for s in stations)
    assert {s["attributes"]["operator"] for s in stations} <= {"中国移动", "中国联通", "中国电信"}
    assert all(s["attributes"]["coverageRadius"] == 300.0 for s in stations)
    cameras = layers["cctv_camera"]
    assert len(cameras) >= BUILDINGS / 20 and all(c["type"] == "CityFurniture" for c in cameras)
    assert {c["attributes"]["publicArea"] for c in cameras} == {True, False}
    lights = layers["street_light"]
    assert len(lights) >= 0.3 * BUILDINGS
    assert all(8.0 <= lamp["attributes"]["poleHeight"] <= 12.0 for lamp in lights)
    assert 0.35 < np.mean([lamp["attributes"]["smart"] for lamp in lights]) < 0.65
    sensors = layers["iot_sensor"]
    assert {s["attributes"]["sensorType"] for s in sensors} == {
        "air_quality",
        "noise",
        "water_level",
        "traffic",
        "parking",
    }
    assert all(isinstance(s["attributes"]["installed"], int) for s in sensors)
    # lamps stand on sidewalks
    sidewalks = np.asarray(
        [
            bbox(local[s[0]])
            for _, o in objects_of(doc, "Road")
            for s, v in zip(
                o["geometry"][0]["boundaries"], o["geometry"][0]["semantics"]["values"], strict=True
            )
            if v == 1
        ]
    )
    at = local[[lamp["geometry"][0]["boundaries"][0] for lamp in lights], :2]
    lamp_boxes = np.hstack([at, at])
    assert overlapping(lamp_boxes, sidewalks, eps=-1e-6).any(axis=1).all()


def test_cityjsonseq_holds_the_same_city(tmp_path: Path, doc: Json, local: np.ndarray) -> None:
    summary = generate_city(
        tmp_path / "c.city.jsonl", buildings=BUILDINGS, seed=SEED, fmt="cityjsonseq"
    )
    lines = summary.path.read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert header["type"] == "CityJSON" and header["version"] == "2.0"
    assert header["CityObjects"] == {} and header["vertices"] == []
    assert header["transform"] == doc["transform"] and header["metadata"] == doc["metadata"]
    assert header["geometry-templates"] == doc["geometry-templates"]
    scale = np.asarray(header["transform"]["scale"])
    types: Counter[str] = Counter()
    for line in lines[1:]:
        feature = orjson.loads(line)
        assert feature["type"] == "CityJSONFeature" and feature["id"] in feature["CityObjects"]
        vertices = np.asarray(feature["vertices"], dtype=float) * scale
        for oid, o in feature["CityObjects"].items():
            types[o["type"]] += 1
            mine, theirs = o["geometry"][0], doc["CityObjects"][oid]["geometry"][0]
            assert o["attributes"] == doc["CityObjects"][oid]["attributes"]
            if mine["type"] in ("MultiPoint", "GeometryInstance"):
                assert mine["boundaries"][0] < len(vertices)
                assert np.array_equal(vertices[mine["boundaries"]], local[theirs["boundaries"]])
                continue
            for a, b in zip(surfaces_of(mine), surfaces_of(theirs), strict=True):
                for ra, rb in zip(a, b, strict=True):
                    assert max(ra) < len(vertices)
                    assert np.array_equal(vertices[ra], local[rb]), oid
    assert len(lines) - 1 == summary.total == len(doc["CityObjects"])
    assert (
        dict(types)
        == summary.counts
        == dict(Counter(o["type"] for o in doc["CityObjects"].values()))
    )


def test_progress_reports_every_building(tmp_path: Path) -> None:
    calls: list[int] = []
    generate_city(
        tmp_path / "p.city.jsonl", buildings=1200, seed=1, fmt="cityjsonseq", progress=calls.append
    )
    assert sum(calls) == 1200 and len(calls) >= 2


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        generate_city(tmp_path / "x.json", buildings=10, fmt="geojson")
    with pytest.raises(InvalidInput):
        generate_city(tmp_path / "x.json", buildings=0)
