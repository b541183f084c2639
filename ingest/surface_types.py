"""Surface types of 3D building surfaces that carry none (PostGIS tables), from each surface's
orientation: facing up is a roof, near vertical a wall, facing down at the base the ground,
facing down above it an outer ceiling (the underside of an overhang or a passage).

CIM needs them for more than colour: an object's 2D footprint, which the model indicators
(coverage, density) measure, is made of its ground surfaces. Orientation is taken as stored
(counter-clockwise seen from outside), unless the surfaces close a volume whose signed volume is
negative, i.e. every surface faces inwards; then it is read reversed. The vertices are never
changed.

Coordinates are first put in a local frame whose z is up, in metres: as they are for a projected
CRS, scaled from degrees for a geographic one, and turned to east-north-up for an Earth-centred
one (EPSG:4978, where pg2b3dm's users often keep their buildings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

WALL_SLOPE = float(np.sin(np.radians(10)))  # |normal z| below this: within 10° of vertical
GROUND_BAND_M = 0.5  # a downward surface starting this close to the lowest vertex is ground
Frame = Literal["projected", "geographic", "geocentric"]
_NAMES: tuple[str | None, ...] = (
    None,
    "RoofSurface",
    "WallSurface",
    "GroundSurface",
    "OuterCeilingSurface",
)


@dataclass(frozen=True)
class Orientation:
    """What was inferred for one geometry."""

    types: list[str | None]  # per surface; None where a surface has no area to face anywhere
    closed: bool  # every edge is shared by exactly two surfaces
    reversed: bool  # the surfaces faced inwards; their types were read the other way


def _ring_next(sizes: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The start of each ring in the concatenated points, and each point's successor in its ring
    (the last point's is the first)."""
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    nxt = np.arange(int(sizes.sum()), dtype=np.int64) + 1
    nxt[starts + sizes - 1] = starts
    return starts, nxt


def _edges_closed(points: NDArray[np.float64], nxt: NDArray[np.int64]) -> bool:
    """Whether every edge (an undirected pair of points, equal to the millimetre) is used exactly
    twice, as in the boundary of a solid."""
    grid = np.round(points * 1000).astype(np.int64)
    order = np.lexsort(grid.T[::-1])
    new = np.ones(len(grid), dtype=bool)
    new[1:] = (np.diff(grid[order], axis=0) != 0).any(axis=1)
    key = np.empty(len(grid), dtype=np.int64)
    key[order] = np.cumsum(new) - 1
    a, b = key, key[nxt]
    keep = a != b  # a repeated point makes no edge
    if not keep.any():
        return False
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    _, counts = np.unique(lo * (int(key.max()) + 1) + hi, return_counts=True)
    return bool((counts == 2).all())


def local_up(points: NDArray[np.float64], frame: Frame) -> NDArray[np.float64]:
    """(n, 3) points in metres around their mean, z up (east-north-up for a geocentric CRS)."""
    centre = points.mean(axis=0)
    d = points - centre
    if frame == "geographic":  # longitude, latitude in degrees, height in metres
        return d * np.array([111_320.0 * np.cos(np.radians(centre[1])), 110_540.0, 1.0])
    if frame == "geocentric":
        up = centre / np.linalg.norm(centre)
        east = np.array([-up[1], up[0], 0.0])
        east /= np.linalg.norm(east)
        north = np.cross(up, east)
        return d @ np.column_stack((east, north, up))
    return d


def surface_types(
    points: NDArray[np.float64], ring_sizes: list[int], polygon_rings: list[int], frame: Frame
) -> Orientation:
    """Types of surfaces whose rings (not closed) follow each other in `points` (n, 3), in the
    source CRS: `ring_sizes` points per ring, `polygon_rings` rings per surface, exterior first."""
    sizes = np.array(ring_sizes, dtype=np.int64)
    points = local_up(points, frame)
    starts, nxt = _ring_next(sizes)
    first = np.concatenate(([0], np.cumsum(polygon_rings)[:-1])).astype(np.int64)
    # Newell's normal of each ring: the sum of its edges' cross products, twice its area vector
    # (exact for a planar ring, a fair average for a near-planar one); the signed volume of a
    # closed shell is a sixth of the sum over its surfaces of (a point) . (that normal)
    normals = np.add.reduceat(np.cross(points, points[nxt]), starts, axis=0)[first]
    lows = np.minimum.reduceat(points[:, 2], starts)[first]
    volume = float(np.einsum("ij,ij->", points[starts[first]], normals)) / 6.0
    closed = _edges_closed(points, nxt)
    flip = closed and volume < 0
    if flip:
        normals = -normals
    length = np.linalg.norm(normals, axis=1)
    nz = np.divide(normals[:, 2], length, out=np.zeros(len(length)), where=length > 0)
    bottom = float(points[:, 2].min())
    kind = np.where(
        nz > WALL_SLOPE,
        1,
        np.where(nz < -WALL_SLOPE, np.where(lows <= bottom + GROUND_BAND_M, 3, 4), 2),
    )
    kind[length <= 1e-9] = 0  # square metres, twice: no area to face anywhere
    types = [_NAMES[k] for k in kind.tolist()]
    return Orientation(types, closed, flip)
