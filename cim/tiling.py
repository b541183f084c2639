"""Which tile each city object lives in: a fixed global quadtree over longitude/latitude.

An object goes to the deepest level whose cells are still at least `FACTOR` times its size, in
the cell holding its centre. Larger objects therefore sit higher in the tree (3D Tiles refine
ADD: each object in exactly one tile), and because the grid is global and the level depends on
the object alone, adding or removing a dataset changes only the tiles its own objects are in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FACTOR = 16.0  # a cell is at least this many times the size of the objects it holds
MIN_SIZE = 20.0  # metres: smaller objects (lamps, trees) are grouped as if this large
MAX_LEVEL = 18
METRES_PER_DEGREE = 111_320.0
_LEVEL0_NS = 180.0 * METRES_PER_DEGREE  # north-south extent of a level-0 cell


def object_size(lo: NDArray[np.float64], hi: NDArray[np.float64]) -> NDArray[np.float64]:
    """Largest extent in metres of (n, 3) lon/lat/height boxes."""
    lat = np.radians((lo[:, 1] + hi[:, 1]) / 2)
    dx = (hi[:, 0] - lo[:, 0]) * METRES_PER_DEGREE * np.cos(lat)
    dy = (hi[:, 1] - lo[:, 1]) * METRES_PER_DEGREE
    dz = hi[:, 2] - lo[:, 2]
    return np.maximum(np.maximum(dx, dy), dz)


def tile_keys(
    lo: NDArray[np.float64], hi: NDArray[np.float64]
) -> tuple[NDArray[np.int16], NDArray[np.int32], NDArray[np.int32], NDArray[np.float64]]:
    """Level, column, row of the tile of each box, and each object's size in metres."""
    size = object_size(lo, hi)
    effective = np.maximum(size, MIN_SIZE)
    level = np.floor(np.log2(_LEVEL0_NS / (FACTOR * effective)))
    level = np.clip(level, 0, MAX_LEVEL).astype(np.int16)
    cells = np.left_shift(1, level.astype(np.int64))
    lon = (lo[:, 0] + hi[:, 0]) / 2
    lat = (lo[:, 1] + hi[:, 1]) / 2
    x = np.clip(np.floor((lon + 180.0) / 360.0 * cells), 0, cells - 1).astype(np.int32)
    y = np.clip(np.floor((lat + 90.0) / 180.0 * cells), 0, cells - 1).astype(np.int32)
    return level, x, y, size


def cell_bounds(level: int, x: int, y: int) -> tuple[float, float, float, float]:
    """West, south, east, north in degrees of a quadtree cell."""
    n = 1 << level
    return (
        x / n * 360.0 - 180.0,
        y / n * 180.0 - 90.0,
        (x + 1) / n * 360.0 - 180.0,
        (y + 1) / n * 180.0 - 90.0,
    )


# What an object weighs in a tile: its content's estimated bytes, which decide where a dense
# tile's objects go (tiles.split). Ingest stores them with the object (city_object.mesh_weight
# and plain_weight), so that a city's tiles are weighed without reading its geometry.
CLOUD_TYPE = "PointCloud"  # objects whose points 3D Tiles 1.0 gives as pnts
OBJECT_BYTES = 200  # its row of the property table
MESH_VERTEX_BYTES = 32  # position, normal, colour, feature id, as glTF without meshopt writes them
POINT_BYTES = 28  # a point cloud's point: position, colour, intensity, class


def object_weights(
    kind: str,
    attributes: dict[str, Any],
    geom: bytes | None,
    vertices: bytes | None,
    triangles: bytes | None,
) -> tuple[int | None, int | None]:
    """The estimated content bytes of the geometry an object draws, besides its
    `OBJECT_BYTES`: of its mesh (float32 xyz `vertices`, uint32 `triangles`), counted apart
    because meshopt halves them, or else of the rest: a point cloud's by the points it says it
    holds, any other by its EWKB `geom`."""
    if vertices is not None:
        return len(vertices) // 12 * MESH_VERTEX_BYTES + len(triangles or b""), None
    points = attributes.get("points") if kind == CLOUD_TYPE else None
    if isinstance(points, int) and not isinstance(points, bool) and points >= 0:
        return None, points * POINT_BYTES
    return None, len(geom or b"")
