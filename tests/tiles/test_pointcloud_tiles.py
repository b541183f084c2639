"""A LAS point cloud as 3D Tiles: in 1.1 GLB points whose colour is the file's RGB and whose
classification and intensity are property attributes (EXT_structural_metadata), in 1.0 pnts with
RGB and a per-point batch table; every point of the file, each at its place; and geometric
errors that are the point spacing a view misses without a tile's descendants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Engine, text

from api.app import create_app
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.ingest.test_pointcloud import LYON, las_header
from tests.tiles.conftest import (
    _accessor,
    _ecef,
    assert_served_tilesets_valid,
    tiles_of,
    validate_glbs,
)
from tests.tiles.test_tilesets import read_pnts
from tiles.gltf import read_glb
from tiles.meshopt import decompress

CELL = 10.0
# LAS point format 3, as the LAS 1.2 specification lays it out
FORMAT_3 = np.dtype(
    [
        ("X", "<i4"),
        ("Y", "<i4"),
        ("Z", "<i4"),
        ("intensity", "<u2"),
        ("bits", "u1"),
        ("classification", "u1"),
        ("scan_angle", "i1"),
        ("user_data", "u1"),
        ("source", "<u2"),
        ("gps_time", "<f8"),
        ("red", "<u2"),
        ("green", "<u2"),
        ("blue", "<u2"),
    ]
)
TO_ECEF = Transformer.from_crs("EPSG:3946", "EPSG:4978", always_xy=True)


@pytest.fixture(scope="module")
def cloud(new_database: Callable[[], Engine]) -> tuple[Engine, TestClient]:
    engine = new_database()
    ingest_files(engine, [LYON], "las", options=ReadOptions(cell_size=CELL))
    return engine, TestClient(create_app(engine=engine))


def _file_points() -> tuple[np.ndarray, np.ndarray]:
    """Every point of the file: Earth-centred position, and (class, intensity, r, g, b) with
    the colour as 8 bits."""
    header = las_header(LYON)
    assert header["record_length"] == FORMAT_3.itemsize
    start = int(header["offset"])
    records = np.frombuffer(LYON.read_bytes(), FORMAT_3, int(header["count"]), start)
    xyz = np.column_stack([records[a] for a in "XYZ"]) * header["scale"] + header["shift"]
    x, y, z = TO_ECEF.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    rgb = np.column_stack([records[c] for c in ("red", "green", "blue")]).astype(np.int64)
    if rgb.max() > 255:
        rgb >>= 8
    values = np.column_stack((records["classification"] & 0x1F, records["intensity"], rgb))
    return np.column_stack((x, y, z)), values


def _same_points(xyz: np.ndarray, values: np.ndarray) -> None:
    """The tile points are the file's points: same count, each with the same class, intensity
    and colour as a file point within 1 cm of it."""
    file_xyz, file_values = _file_points()
    assert len(xyz) == len(file_xyz)
    order = np.lexsort(file_values.T[::-1])
    file_xyz, file_values = file_xyz[order], file_values[order]
    keys = [tuple(v) for v in file_values.tolist()]
    first = {}
    for n, k in enumerate(keys):
        first.setdefault(k, n)
    ends = {}
    for n, k in enumerate(keys):
        ends[k] = n + 1
    for point, value in zip(xyz, values.tolist(), strict=True):
        k = tuple(value)
        assert k in first, f"a tile point has values {k} that no file point has"
        near = np.linalg.norm(file_xyz[first[k] : ends[k]] - point, axis=1).min()
        assert near < 0.01, f"a tile point is {near:.3f} m from every file point with {k}"


def test_glb_points_carry_rgb_classification_and_intensity(
    cloud: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    _, client = cloud
    tileset = client.get("/collections/las/3dtiles/tileset.json").json()
    xyz, values, paths = [], [], []
    for n, tile in enumerate(t for t in tiles_of(tileset) if "content" in t):
        data = client.get(f"/collections/las/3dtiles/{tile['content']['uri']}").content
        paths.append(tmp_path / f"{n}.glb")
        paths[-1].write_bytes(data)
        doc, binary = read_glb(decompress(data))
        meta = doc["extensions"]["EXT_structural_metadata"]
        assert meta["schema"]["classes"]["point"]["properties"] == {
            "classification": {"type": "SCALAR", "componentType": "UINT8"},
            "intensity": {"type": "SCALAR", "componentType": "UINT16"},
        }
        [points] = [p for p in doc["meshes"][0]["primitives"] if p["mode"] == 0]
        used = points["extensions"]["EXT_structural_metadata"]["propertyAttributes"]
        described = meta["propertyAttributes"][used[0]]["properties"]
        attrs = points["attributes"]
        colour = np.round(_accessor(doc, binary, attrs["COLOR_0"])[:, :3] * 255)
        classes = _accessor(doc, binary, attrs[described["classification"]["attribute"]])
        intensity = _accessor(doc, binary, attrs[described["intensity"]["attribute"]])
        xyz.append(_ecef(doc, binary, points))
        values.append(np.column_stack((classes, intensity, colour)).astype(np.int64))
    _same_points(np.concatenate(xyz), np.concatenate(values))
    reports = validate_glbs(paths)
    assert {p: r for p, r in reports.items() if r["errors"] or r["warnings"]} == {}


def test_the_point_cloud_tilesets_pass_the_3d_tiles_validator(
    cloud: tuple[Engine, TestClient], tmp_path: Path
) -> None:
    engine, _ = cloud
    assert_served_tilesets_valid(engine, ["las"], tmp_path)


def test_pnts_points_carry_rgb_classification_and_intensity(
    cloud: tuple[Engine, TestClient],
) -> None:
    _, client = cloud
    tileset = client.get("/collections/las/3dtiles/tileset.json?version=1.0").json()
    xyz, values = [], []
    for tile in tiles_of(tileset):
        if "content" in tile:
            uri = tile["content"]["uri"].partition("?")[0]
            assert uri.endswith(".pnts")
            _, arrays = read_pnts(client.get(f"/collections/las/3dtiles/{uri}").content)
            xyz.append(arrays["POSITION"])
            values.append(
                np.column_stack(
                    (arrays["Classification"], arrays["Intensity"], arrays["RGB"])
                ).astype(np.int64)
            )
    _same_points(np.concatenate(xyz), np.concatenate(values))


def test_geometric_error_is_the_spacing_a_view_misses(cloud: tuple[Engine, TestClient]) -> None:
    """A tile's geometric error is the largest spacing among the levels its descendants hold
    (a level's objects, when not drawn, leave the next coarser spacing); leaves have 0; the
    tileset's own error is what the coarsest level leaves."""
    engine, client = cloud
    tileset = client.get("/collections/las/3dtiles/tileset.json").json()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tile_level, tile_x, tile_y,"
                " coalesce((attributes ->> 'overview_level')::int, 0) FROM city_object"
                " WHERE city_code = 'las'"
            )
        ).all()
    missed = {}  # per tile: the largest spacing its own objects leave when not drawn
    for level, x, y, overview in rows:
        spacing = CELL * 0.02 * 4**overview
        missed[(level, x, y)] = max(missed.get((level, x, y), 0.0), spacing)
    assert tileset["geometricError"] == pytest.approx(CELL * 0.02 * 4**3)

    def below(tile: dict) -> float:
        out = 0.0
        for child in tile.get("children", []):
            uri = child.get("content", {}).get("uri")
            if uri:
                level, x, y = map(int, uri.rsplit(".", 1)[0].split("/")[1:])
                out = max(out, missed[(level, x, y)])
            out = max(out, below(child))
        return out

    for tile in tiles_of(tileset):
        assert tile["geometricError"] == pytest.approx(below(tile), rel=1e-5)


def test_a_tile_mixing_a_cloud_a_textured_house_and_other_points(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    """Points of a LAS cloud, the textured Lyon house and a CityJSON MultiPoint object in one
    tile: in 1.1 the cloud's points keep their property attributes (the other points are a
    primitive of their own) and the house its texture; in 1.0 the tile is a cmpt of a b3dm
    (the house, textured, and the other points) and a pnts (the cloud)."""
    import json

    import laspy

    from tests.tiles.test_textures import LYON as HOUSE
    from tests.tiles.test_tilesets import _inner_tiles, _read_b3dm

    centre = np.array([1841522.0, 5175889.0, 206.0])  # the house, in EPSG:3946
    rng = np.random.default_rng(3)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales, header.offsets = np.array([0.01] * 3), centre
    header.add_crs(__import__("pyproj").CRS.from_epsg(3946))
    cloud = laspy.LasData(header)
    xyz = centre + rng.uniform(-4, 4, (300, 3))
    cloud.x, cloud.y, cloud.z = xyz.T
    cloud.classification = np.full(300, 6, np.uint8)
    cloud.red = cloud.green = cloud.blue = np.full(300, 40000, np.uint16)
    cloud.write(tmp_path / "cloud.las")
    trees = {
        "type": "CityJSON",
        "version": "2.0",
        "transform": {"scale": [0.01, 0.01, 0.01], "translate": centre.tolist()},
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/3946"},
        "CityObjects": {
            "trees": {
                "type": "SolitaryVegetationObject",
                "geometry": [{"type": "MultiPoint", "lod": "1", "boundaries": [0, 1, 2]}],
            }
        },
        "vertices": [[0, 0, 0], [100, 100, 0], [-100, 50, 0]],
    }
    (tmp_path / "trees.city.json").write_text(json.dumps(trees))
    engine = new_database()
    ingest_files(engine, [HOUSE], "mix", crs="EPSG:3946")
    ingest_files(engine, [tmp_path / "cloud.las"], "mix", options=ReadOptions(cell_size=20.0))
    ingest_files(engine, [tmp_path / "trees.city.json"], "mix")
    with engine.connect() as conn:
        tiles = conn.execute(
            text(
                "SELECT DISTINCT tile_level, tile_x, tile_y FROM city_object"
                " WHERE city_code = 'mix' AND tile_level IS NOT NULL"
            )
        ).all()
    assert len(tiles) == 1  # all in one tile
    client = TestClient(create_app(engine=engine))
    [uri] = [
        t["content"]["uri"]
        for t in tiles_of(client.get("/collections/mix/3dtiles/tileset.json").json())
        if "content" in t
    ]
    doc, binary = read_glb(decompress(client.get(f"/collections/mix/3dtiles/{uri}").content))
    primitives = doc["meshes"][0]["primitives"]
    points = [p for p in primitives if p["mode"] == 0]
    assert [len(_accessor(doc, binary, p["attributes"]["POSITION"])) for p in points] == [300, 3]
    assert "_CLASSIFICATION" in points[0]["attributes"]
    assert (_accessor(doc, binary, points[0]["attributes"]["_CLASSIFICATION"]) == 6).all()
    assert "_CLASSIFICATION" not in points[1]["attributes"]
    assert any("TEXCOORD_0" in p["attributes"] for p in primitives)
    # 3D Tiles 1.0
    old = client.get("/collections/mix/3dtiles/tileset.json?version=1.0").json()
    [uri] = [t["content"]["uri"].partition("?")[0] for t in tiles_of(old) if "content" in t]
    assert uri.endswith(".cmpt")
    b3dm, pnts = _inner_tiles(client.get(f"/collections/mix/3dtiles/{uri}").content)
    feature, _, glb = _read_b3dm(b3dm)
    inner, _ = read_glb(glb)
    assert any("TEXCOORD_0" in p["attributes"] for p in inner["meshes"][0]["primitives"])
    assert sum(p["mode"] == 0 for p in inner["meshes"][0]["primitives"]) == 1  # the trees
    features, arrays = read_pnts(pnts)
    assert features["POINTS_LENGTH"] == 300 and (arrays["Classification"] == 6).all()
    assert (arrays["RGB"] == 40000 >> 8).all()  # 16-bit colours, as the file's header says
    assert_served_tilesets_valid(engine, ["mix"], tmp_path / "served")
