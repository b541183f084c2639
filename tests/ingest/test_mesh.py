"""Meshes (OBJ, GLB) through `cim ingest`: each becomes as many city objects as the file has
mesh nodes, with all its triangles, placed exactly where an independent PROJ pipeline puts its
local east-north-up coordinates (`--origin`) or its CRS coordinates plus an offset (`--crs`,
`--offset`); glTF's Y-up is turned Z-up and material colours are kept."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.errors import IngestError
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

OBJS = sorted((SHARED / "mesh/lyon_obj").glob("*.obj"))
GLB = SHARED / "mesh/kit_railway_glb/railway.glb"
ORIGIN = (4.8590, 45.7605, 220.0)  # near the Part-Dieu tower, Lyon


def objects_in(path: Path) -> int:
    """Mesh nodes of the file, read without trimesh."""
    if path.suffix == ".glb":
        data = path.read_bytes()
        length = struct.unpack("<I", data[12:16])[0]
        doc = json.loads(data[20 : 20 + length])
        return sum(1 for node in doc["nodes"] if "mesh" in node)
    names = [ln for ln in path.read_text().splitlines() if ln.startswith(("o ", "g "))]
    return max(1, len(names))


def triangles_in(path: Path) -> int:
    if path.suffix == ".glb":
        data = path.read_bytes()
        length = struct.unpack("<I", data[12:16])[0]
        doc = json.loads(data[20 : 20 + length])
        return sum(
            doc["accessors"][p["indices"]]["count"] // 3
            for m in doc["meshes"]
            for p in m["primitives"]
        )
    faces = [ln.split()[1:] for ln in path.read_text().splitlines() if ln.startswith("f ")]
    return sum(len(f) - 2 for f in faces)


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    for n, path in enumerate([*OBJS, GLB]):
        ingest_files(engine, [path], f"m{n}", options=ReadOptions(origin=ORIGIN))
    return engine


@pytest.mark.parametrize("n", range(len(OBJS) + 1), ids=[p.name for p in [*OBJS, GLB]])
def test_every_mesh_lands_whole(db: Engine, n: int) -> None:
    path = [*OBJS, GLB][n]
    with db.connect() as conn:
        objects, triangles = conn.execute(
            text(
                "SELECT count(DISTINCT o.id), sum(ST_NumGeometries(g.geom)) FROM city_object o "
                "JOIN object_geometry g ON g.city_code = o.city_code AND g.object_id = o.id "
                "WHERE o.city_code = :c"
            ),
            {"c": f"m{n}"},
        ).one()
    assert objects == objects_in(path)
    assert triangles == triangles_in(path)


def _enu_to_lonlath(enu: np.ndarray, origin: tuple[float, float, float]) -> np.ndarray:
    """Independently of CIM: PROJ's topocentric conversion, inverted, then geocentric to 4979."""
    lon, lat, h = origin
    pipeline = (
        "+proj=pipeline +step +proj=cart +ellps=WGS84 "
        f"+step +proj=topocentric +ellps=WGS84 +lon_0={lon} +lat_0={lat} +h_0={h}"
    )
    to_enu = Transformer.from_pipeline(pipeline)
    lon_, lat_, h_ = to_enu.transform(enu[:, 0], enu[:, 1], enu[:, 2], direction="INVERSE")
    return np.column_stack((lon_, lat_, h_))  # degrees: pyproj converts the angles


def _stored(engine: Engine, city: str) -> np.ndarray:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ST_X(d.geom), ST_Y(d.geom), ST_Z(d.geom) FROM object_geometry g, "
                "ST_DumpPoints(g.geom) d WHERE g.city_code = :c"
            ),
            {"c": city},
        ).all()
    return np.array(rows, dtype=float)


def _metres(a: np.ndarray, b: np.ndarray) -> float:
    t = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    pa = np.column_stack(t.transform(a[:, 0], a[:, 1], a[:, 2]))
    pb = np.column_stack(t.transform(b[:, 0], b[:, 1], b[:, 2]))
    return float(np.linalg.norm(pa - pb, axis=1).max())


def _obj_vertices(path: Path) -> np.ndarray:
    return np.array(
        [ln.split()[1:4] for ln in path.read_text().splitlines() if ln.startswith("v ")],
        dtype=float,
    )


def test_origin_places_east_north_up_metres(db: Engine) -> None:
    n = next(i for i, p in enumerate(OBJS) if p.name == "tour_part_dieu.obj")
    enu = _obj_vertices(OBJS[n])[:50]
    expected = _enu_to_lonlath(enu, ORIGIN)
    stored = _stored(db, f"m{n}")
    nearest = np.array([stored[np.argmin(np.abs(stored - e).sum(axis=1))] for e in expected])
    assert _metres(nearest, expected) < 0.01
    # the tower stands: about 170 m from its lowest to its highest point
    assert 150 < stored[:, 2].max() - stored[:, 2].min() < 180


def test_crs_with_offset(engine: Engine) -> None:
    path = next(p for p in OBJS if p.name == "palais_de_justice.obj")
    offset = (1842000.0, 5175000.0, 170.0)
    ingest_files(engine, [path], "pj", crs="EPSG:3946", options=ReadOptions(offset=offset))
    xyz = _obj_vertices(path)[:50] + np.array(offset)
    t = Transformer.from_crs("EPSG:3946", "EPSG:4979", always_xy=True)
    expected = np.column_stack(t.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2]))
    stored = _stored(engine, "pj")
    nearest = np.array([stored[np.argmin(np.abs(stored - e).sum(axis=1))] for e in expected])
    assert _metres(nearest, expected) < 0.05


def test_gltf_is_turned_z_up_and_keeps_its_colours(db: Engine) -> None:
    n = len(OBJS)
    stored = _stored(db, f"m{n}")
    t = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    ecef = np.column_stack(t.transform(stored[:, 0], stored[:, 1], stored[:, 2]))
    horizontal = np.linalg.norm(ecef.max(axis=0) - ecef.min(axis=0))
    assert stored[:, 2].max() - stored[:, 2].min() < 0.5 * horizontal  # a railway lies flat
    assert stored[:, 2].min() > ORIGIN[2] - 1.0  # and stands on the origin, not below it
    with db.connect() as conn:
        materials = conn.execute(
            text("SELECT appearance -> 'materials' FROM dataset WHERE city_code = :c"),
            {"c": f"m{n}"},
        ).scalar_one()
        colours = (
            conn.execute(
                text(
                    "SELECT DISTINCT encode(substring(mesh_colours from 1 for 3), 'hex') "
                    "FROM object_geometry WHERE city_code = :c"
                ),
                {"c": f"m{n}"},
            )
            .scalars()
            .all()
        )
    assert len(materials) > 1 and all("diffuseColor" in m for m in materials)
    # every primitive is drawn in its material's base colour (not the type's default pink)
    expected = {"".join(f"{int(v * 255):02x}" for v in m["diffuseColor"]) for m in materials}
    assert set(colours) == expected and "e678c8" not in colours


def test_a_mesh_without_a_place_is_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="--origin lon,lat,height"):
        ingest_files(engine, [OBJS[0]], "x")
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"glTF\x02\x00\x00\x00" + b"\x00" * 40)
    with pytest.raises(IngestError, match="broken.glb"):
        ingest_files(engine, [broken], "x", options=ReadOptions(origin=ORIGIN))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dataset")).scalar_one() == 0
