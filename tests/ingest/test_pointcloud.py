"""Point clouds (LAS) through `cim ingest`: every point lands, grouped in cells, placed where
pyproj puts it, with its whole LAS record kept byte for byte (read back here with the layout
stored beside it and compared with the file's own records, read without laspy)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.errors import IngestError
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

LYON = SHARED / "pointcloud/lyon_lidar_dense_vegetation/ExampleDataDenseVegetation.las"
RIPPLE = SHARED / "pointcloud/py3dtiles_ripple_nosrs/ripple.las"


def las_header(path: Path) -> dict[str, float | int]:
    """The fields of a LAS 1.0-1.3 header this test needs, read with struct."""
    data = path.read_bytes()[:227]
    (offset,) = struct.unpack("<I", data[96:100])
    (record_length,) = struct.unpack("<H", data[105:107])
    (count,) = struct.unpack("<I", data[107:111])
    scale = struct.unpack("<3d", data[131:155])
    shift = struct.unpack("<3d", data[155:179])
    max_x, min_x, max_y, min_y, _, _ = struct.unpack("<6d", data[179:227])
    return {
        "mins": (min_x, min_y),
        "offset": offset,
        "record_length": record_length,
        "count": count,
        "scale": scale,
        "shift": shift,
    }


def _stored(engine: Engine, city: str) -> tuple[list, list[bytes], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT g.structure -> 'point_data' -> 'dtype', g.point_data, "
                "(o.attributes ->> 'points')::int FROM object_geometry g JOIN city_object o "
                "ON o.city_code = g.city_code AND o.id = g.object_id WHERE g.city_code = :c"
            ),
            {"c": city},
        ).all()
    return rows[0][0], [bytes(r[1]) for r in rows], sum(r[2] for r in rows)


def test_every_point_lands_with_its_whole_record(engine: Engine) -> None:
    [report] = ingest_files(engine, [LYON], "lyon", options=ReadOptions(cell_size=20.0))
    header = las_header(LYON)
    layout, blobs, points = _stored(engine, "lyon")
    assert points == header["count"] and report.source_crs == "EPSG:3946"
    dtype = np.dtype([(name, kind) for name, kind in layout])
    assert dtype.itemsize == header["record_length"]
    stored = np.frombuffer(b"".join(blobs), dtype=dtype)
    raw = LYON.read_bytes()
    start = int(header["offset"])
    original = np.frombuffer(
        raw[start : start + header["count"] * header["record_length"]], dtype=dtype
    )
    assert sorted(r.tobytes() for r in stored) == sorted(r.tobytes() for r in original)
    assert report.counts_by_type["PointCloud"] > 1  # cells of 20 m over a 40 m extract


def test_points_are_placed_as_pyproj_places_them(engine: Engine) -> None:
    ingest_files(engine, [LYON], "lyon")
    header = las_header(LYON)
    data = LYON.read_bytes()
    start = int(header["offset"])
    xyz_int = np.frombuffer(data[start : start + 12], dtype="<i4").astype(float)
    x, y, z = xyz_int * np.array(header["scale"]) + np.array(header["shift"])
    lon, lat, h = Transformer.from_crs("EPSG:3946", "EPSG:4979", always_xy=True).transform(x, y, z)
    with engine.connect() as conn:
        points = np.array(
            conn.execute(
                text(
                    "SELECT ST_X(d.geom), ST_Y(d.geom), ST_Z(d.geom) FROM object_geometry g, "
                    "ST_DumpPoints(g.geom) d WHERE g.city_code = 'lyon'"
                )
            ).all()
        )
    d = np.hypot(
        (points[:, 0] - lon) * 111320 * np.cos(np.radians(lat)), (points[:, 1] - lat) * 110540
    )
    k = int(np.argmin(d))
    assert d[k] < 0.05 and abs(points[k, 2] - h) < 0.05


def test_a_cloud_without_crs_asks_for_one(engine: Engine) -> None:
    with pytest.raises(IngestError, match="declares no CRS.*--crs"):
        ingest_files(engine, [RIPPLE], "ripple")
    # its synthetic coordinates (-5 to 5 m) lie outside France's EPSG:3946, which is refused;
    # in Web Mercator they are at 0 N 0 E, inside its area
    with pytest.raises(IngestError, match="outside the area of use of EPSG:3946"):
        ingest_files(engine, [RIPPLE], "ripple", crs="EPSG:3946")
    [report] = ingest_files(
        engine, [RIPPLE], "ripple", crs="EPSG:3857", options=ReadOptions(cell_size=2.0)
    )
    assert set(report.counts_by_type) == {"PointCloud"}
    _, _, points = _stored(engine, "ripple")
    assert points == las_header(RIPPLE)["count"]


def test_levels_of_detail_thin_points_by_column(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each object holds the points of one cell of its level (cell size x 4 per level); the
    points of level k and above are exactly one per column (a square seen from above, of side
    cell size x 0.02 x 4^(k-1)) that has points, over the whole file although it is read in
    chunks; every point is in exactly one object; and an object's geometric error (`size`) is
    the spacing of the next coarser level."""
    import ingest.pointcloud

    monkeypatch.setattr(ingest.pointcloud, "CHUNK", 1000)  # the file in 11 chunks
    cell = 20.0
    ingest_files(engine, [LYON], "lod", options=ReadOptions(cell_size=cell))
    header = las_header(LYON)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT coalesce((o.attributes ->> 'overview_level')::int, 0), o.size,"
                " g.structure -> 'point_data' -> 'dtype', g.point_data FROM city_object o"
                " JOIN object_geometry g ON g.city_code = o.city_code AND g.object_id = o.id"
                " WHERE o.city_code = 'lod'"
            )
        ).all()
    levels, xyz = [], []
    for level, size, layout, blob in rows:
        records = np.frombuffer(blob, dtype=np.dtype([(n, k) for n, k in layout]))
        p = np.column_stack([records[a] for a in "XYZ"]) * header["scale"] + header["shift"]
        side = cell * 4**level
        assert len({tuple(c) for c in np.floor((p[:, :2] - header["mins"]) / side)}) == 1
        assert size == pytest.approx(cell * 0.02 * 4**level)  # spacing of level + 1
        levels.append(np.full(len(p), level))
        xyz.append(p)
    level = np.concatenate(levels)
    points = np.concatenate(xyz)
    assert len(points) == header["count"]
    assert sorted(set(level.tolist())) == [0, 1, 2, 3]
    counts = [int((level == k).sum()) for k in range(4)]
    assert counts[3] < counts[2] < counts[1]  # coarser levels hold fewer points
    for k in (1, 2, 3):
        upper = points[level >= k, :2]
        side = cell * 0.02 * 4 ** (k - 1)
        columns = np.floor((upper - header["mins"]) / side)
        assert len(np.unique(columns, axis=0)) == len(upper)  # one point per column ...
        every = np.floor((points[:, :2] - header["mins"]) / side)
        assert len(np.unique(every, axis=0)) == len(upper)  # ... in every column with points


def test_a_truncated_file_is_refused(engine: Engine, tmp_path: Path) -> None:
    cut = tmp_path / "cut.las"
    cut.write_bytes(LYON.read_bytes()[:-1000])
    with pytest.raises(IngestError, match="cut.las"):
        ingest_files(engine, [cut], "cut")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dataset")).scalar_one() == 0


def test_a_header_with_wrong_bounds_still_lands_every_point(engine: Engine, tmp_path: Path) -> None:
    """The overview columns are laid over the header's bounds; bounds that are absurd (here the
    maximum x below the minimum) make the reader thin per chunk instead, and lose nothing."""
    broken = tmp_path / "bounds.las"
    data = bytearray(LYON.read_bytes())
    data[179:187] = struct.pack("<d", -1e308)  # maximum x
    broken.write_bytes(bytes(data))
    ingest_files(engine, [broken], "bounds", options=ReadOptions(cell_size=20.0))
    _, _, points = _stored(engine, "bounds")
    assert points == las_header(LYON)["count"]
    # bounds left at zero (a stale header): the points lie outside them; said so, and the
    # levels still thin (a level-3 column holds one point, not all of them)
    data[179:227] = struct.pack("<6d", 0, 0, 0, 0, 0, 0)
    broken.write_bytes(bytes(data))
    [report] = ingest_files(engine, [broken], "zero", options=ReadOptions(cell_size=20.0))
    assert any("bounds do not hold all points" in w for w in report.warnings)
    with engine.connect() as conn:
        top = conn.execute(
            text(
                "SELECT sum((attributes ->> 'points')::int) FROM city_object"
                " WHERE city_code = 'zero' AND attributes ->> 'overview_level' = '3'"
            )
        ).scalar_one()
    assert 0 < top < las_header(LYON)["count"] / 20
