"""The fast paths of a point cloud's ingest store what the plain ones stored: the grouping of a
chunk by level and cell (a plain sort of keys with the point's index in their low bits, for a
stable argsort), points in cells as the file orders them, EWKB of any array layout, the bounds
check of coordinates before the point-by-point one, PROJ transforming columns in place, and the
file's checksum taken in a thread."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import laspy
import numpy as np
import pytest
from numpy.typing import NDArray
from pyproj import CRS
from sqlalchemy import Engine, text

from cim.crs import ToStorage
from cim.errors import IngestError
from cim.geometry import ewkb_multipoints
from ingest.model import ReadOptions, SourceGeometry, SourceObject
from ingest.pipeline import ingest_files
from ingest.pointcloud import PointCloudReader, _group
from ingest.prepare import _Batch
from tests.ingest.test_pointcloud import LYON


def _reference_group(level: NDArray[np.int8], i: NDArray[np.int64], j: NDArray[np.int64]) -> Any:
    """The grouping as it was first written: a stable argsort of a 64-bit key."""
    key = (level.astype(np.int64) << 56) | (i << 28) | j
    order = np.argsort(key, kind="stable")
    key = key[order]
    return order, np.flatnonzero(np.r_[True, key[1:] != key[:-1]])


@pytest.mark.parametrize("spread", [40, 0xFFFFFFF], ids=["dense-keys", "far-cells-fallback"])
def test_grouping_is_the_stable_sort_of_level_and_cell(spread: int) -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    level = rng.integers(0, 4, n).astype(np.int8)
    i = rng.integers(0, 30, n).astype(np.int64)
    j = rng.integers(0, 30, n).astype(np.int64)
    i[::97], j[::89] = spread, spread  # far cells: no spare bits left for the point's index
    order, starts = _group(level, i, j)
    expected_order, expected_starts = _reference_group(level, i, j)
    assert np.array_equal(order, expected_order)
    assert np.array_equal(starts, expected_starts)


def test_an_empty_chunk_has_no_groups() -> None:
    order, starts = _group(np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert len(order) == 0 and len(starts) == 0


def test_each_cell_holds_its_points_in_the_files_order_with_their_records() -> None:
    """Every object's points are the file's points of its cell (and level), in the file's order,
    each beside its own LAS record."""
    reader = PointCloudReader(LYON, ReadOptions(cell_size=10.0))
    objects = list(reader.objects())
    las = laspy.read(str(LYON))
    records = np.ascontiguousarray(las.points.array)
    xyz = np.column_stack((las.x, las.y, las.z))
    by_record = {records[k].tobytes(): k for k in range(len(records))}
    assert len(by_record) == len(records)  # every record differs: it names its point
    seen: list[int] = []
    for obj in objects:
        geometry = obj.geometries[0]
        assert geometry.point_data is not None
        size = records.dtype.itemsize
        data = geometry.point_data
        index = [by_record[data[k : k + size]] for k in range(0, len(data), size)]
        assert index == sorted(index)  # the file's order within the cell
        assert np.array_equal(geometry.vertices, xyz[index])
        assert obj.attributes["points"] == len(index)
        seen += index
    assert sorted(seen) == list(range(len(records)))  # every point once
    levels = {obj.attributes.get("overview_level", 0) for obj in objects}
    assert levels == {0, 1, 2, 3}


def _reference_multipoints(coords: NDArray[np.float64], counts: list[int], srid: int) -> list:
    out, at = [], 0
    for count in counts:
        parts = [struct.pack("<BIII", 1, 0xA0000004, srid, count)]
        for x, y, z in coords[at : at + count].tolist():
            parts.append(struct.pack("<BIddd", 1, 0x80000001, x, y, z))
        out.append(b"".join(parts))
        at += count
    return out


@pytest.mark.parametrize("order", ["C", "F"])
def test_multipoints_are_packed_alike_from_any_array_layout(order: str) -> None:
    coords = np.random.default_rng(3).normal(size=(50, 3)) * 1e3
    coords = np.asfortranarray(coords) if order == "F" else coords
    counts = [7, 0, 43]
    assert ewkb_multipoints(coords, np.array(counts), 4979) == _reference_multipoints(
        coords, counts, 4979
    )


def _batch(points: list[NDArray[np.float64]]) -> _Batch:
    objects = [
        SourceObject(
            f"cell{n}",
            "PointCloud",
            {},
            [],
            [],
            [SourceGeometry("MultiPoint", None, "point", p, range(len(p)), [], [], {})],
        )
        for n, p in enumerate(points)
    ]
    return _Batch("cloud.las", objects)


@pytest.mark.parametrize(
    ("row", "column", "value", "problem"),
    [
        ("src", 0, 1e12, "absurd coordinate"),
        ("src", 2, -1e12, "absurd coordinate"),
        ("llh", 0, np.nan, "cannot be placed"),
        ("llh", 1, 90.5, "cannot be placed"),
        ("llh", 0, -np.inf, "cannot be placed"),
        ("llh", 2, 2e5, "cannot be placed"),
    ],
)
def test_a_bad_coordinate_is_still_refused_naming_its_object(
    row: str, column: int, value: float, problem: str
) -> None:
    src = np.full((10, 3), 100.0)
    llh = np.asfortranarray(np.tile([117.0, 36.0, 50.0], (10, 1)))  # as to_lonlath gives it
    batch = _batch([src[:4], src[4:]])
    batch.check_placed(src, llh, 1e9, "EPSG:4548")  # all placed: no error
    (src if row == "src" else llh)[6, column] = value
    with pytest.raises(IngestError, match=problem) as caught:
        batch.check_placed(src, llh, 1e9, "EPSG:4548")
    assert "cell1" in str(caught.value)


@pytest.mark.parametrize("swap", [False, True])
def test_coordinates_are_transformed_as_pyproj_transforms_their_columns(swap: bool) -> None:
    to = ToStorage(CRS.from_epsg(4548), swap_xy=swap)
    rng = np.random.default_rng(5)
    east, north = rng.uniform(480_000, 520_000, 1000), rng.uniform(4_040_000, 4_070_000, 1000)
    height = rng.uniform(0, 90, 1000)
    xyz = np.column_stack((north, east, height) if swap else (east, north, height))
    llh = to.to_lonlath(xyz)
    a, b = (1, 0) if swap else (0, 1)
    lon, lat, h = to._transformer.transform(xyz[:, a], xyz[:, b], xyz[:, 2], errcheck=False)
    assert np.array_equal(llh, np.column_stack((lon, lat, h)))  # exactly, not approximately
    assert 116.5 < llh[:, 0].min() and llh[:, 0].max() < 117.5


def test_the_files_checksum_is_stored(engine: Engine) -> None:
    ingest_files(engine, [LYON], "sum")
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT checksum, status FROM dataset WHERE city_code = 'sum'")
        ).one()
    assert tuple(stored) == (hashlib.sha256(LYON.read_bytes()).hexdigest(), "ready")
