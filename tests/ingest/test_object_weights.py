"""Each object's estimated tile content bytes (cim.tiling.object_weights) are stored by ingest as
migration 0015 computes them from the stored geometry for objects ingested before it: the
tiles' split (tiles.split) weighs a city by them alone, so both must agree, for meshes, point
clouds, lines and objects with nothing to draw."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from sqlalchemy import Engine, text

from cim.db.engine import MIGRATIONS
from cim.tiling import CLOUD_TYPE, MESH_VERTEX_BYTES, POINT_BYTES, object_weights
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.ingest.test_mesh import GLB, ORIGIN
from tests.ingest.test_pointcloud import LYON, SHARED

_WEIGHTS = "SELECT source_id, mesh_weight, plain_weight FROM city_object WHERE city_code = :c"


def _backfill() -> str:
    path = MIGRATIONS / "versions" / "0015_object_weights.py"
    spec = importlib.util.spec_from_file_location("migration_0015", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.BACKFILL)


def _city_file(tmp_path: Path) -> Path:
    """Two 3DBAG buildings, and beside them a line, points that are not a point cloud, and an
    object with no geometry."""
    doc = json.loads((SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json").read_text())
    doc["extensions"] = {"S": {"url": "https://example.org/s.ext.json", "version": "1.0"}}
    objects = doc["CityObjects"]
    objects["line-1"] = {
        "type": "Railway",
        "geometry": [{"type": "MultiLineString", "lod": "1", "boundaries": [[0, 1, 2], [2, 3]]}],
    }
    objects["sensors-1"] = {
        "type": "+Sensors",
        "attributes": {"points": 1000},  # not a point cloud: its own points count
        "geometry": [{"type": "MultiPoint", "lod": "1", "boundaries": [0, 1, 2]}],
    }
    objects["empty-1"] = {"type": "CityFurniture", "attributes": {"kind": "bench"}}
    path = tmp_path / "mixed.city.json"
    path.write_text(json.dumps(doc))
    return path


def test_weights_stored_at_ingest_are_those_of_the_stored_geometry(
    engine: Engine, tmp_path: Path
) -> None:
    ingest_files(engine, [_city_file(tmp_path)], "w")
    ingest_files(engine, [LYON], "w")
    ingest_files(engine, [GLB], "w", options=ReadOptions(origin=ORIGIN))
    with engine.begin() as conn:
        stored = {r[0]: (r[1], r[2]) for r in conn.execute(text(_WEIGHTS), {"c": "w"})}
        conn.execute(text("UPDATE city_object SET mesh_weight = NULL, plain_weight = NULL"))
        conn.execute(text(_backfill()))
        backfilled = {r[0]: (r[1], r[2]) for r in conn.execute(text(_WEIGHTS), {"c": "w"})}
        meshes = conn.execute(
            text(
                "SELECT o.source_id, octet_length(g.mesh_vertices) / 12,"
                " octet_length(g.mesh_triangles), o.dataset_id"
                " FROM object_geometry g JOIN city_object o ON o.city_code = g.city_code"
                " AND o.id = g.object_id AND g.idx = o.display_idx"
                " WHERE o.city_code = 'w' AND g.mesh_vertices IS NOT NULL"
            )
        ).all()
        conn.rollback()
    assert stored == backfilled
    # every kind is there, weighed by its own rule
    # the 3DBAG buildings and the railway mesh
    assert len({m.dataset_id for m in meshes}) == 2 and len(meshes) >= 3
    for source_id, vertices, triangles, _ in meshes:
        assert stored[source_id] == (vertices * MESH_VERTEX_BYTES + triangles, None)
    ewkb_three_points = 9 + 4 + 3 * 29  # header with SRID, then each point with its own header
    assert stored["sensors-1"] == (None, ewkb_three_points)
    assert stored["line-1"][0] is None and stored["line-1"][1] > 0
    assert stored["empty-1"] == (None, None)
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                text(
                    "SELECT source_id, (attributes ->> 'points')::bigint FROM city_object"
                    " WHERE city_code = 'w' AND type = 'PointCloud'"
                )
            ).all()
        )
    assert counts and all(stored[k] == (None, n * POINT_BYTES) for k, n in counts.items())


def test_a_point_count_that_is_no_count_of_points_is_not_trusted() -> None:
    ewkb = b"\x00" * 100
    assert object_weights(CLOUD_TYPE, {"points": 3}, ewkb, None, None) == (None, 3 * POINT_BYTES)
    for bad in ("three", -1, True, 2.5, None):
        assert object_weights(CLOUD_TYPE, {"points": bad}, ewkb, None, None) == (None, 100)
    assert object_weights("Building", {"points": 3}, ewkb, None, None) == (None, 100)
    assert object_weights("Building", {}, None, None, None) == (None, 0)
    mesh = object_weights(CLOUD_TYPE, {"points": 3}, ewkb, b"\x00" * 36, b"\x00" * 12)
    assert mesh == (3 * MESH_VERTEX_BYTES + 12, None)
