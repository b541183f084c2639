"""Geometry helpers: triangulating planar polygons in 3D, EWKB encoding, 2D convex hulls.

Polygons are triangulated once, at ingest, on their best-fit plane (Newell normal), holes kept,
so that tiling only concatenates vertex buffers. Triangles keep the orientation of the polygon's
exterior ring, which CityJSON and CityGML define as facing outwards.
"""

from __future__ import annotations

import struct

import mapbox_earcut
import numpy as np
from numpy.typing import NDArray

_Z = 0x80000000
_SRID = 0x20000000
_POINT, _LINESTRING, _POLYGON, _MULTIPOINT, _MULTILINESTRING, _MULTIPOLYGON = 1, 2, 3, 4, 5, 6


def ring_starts(sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    """Start offset of each ring given their sizes."""
    starts = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1], out=starts[1:])
    return starts


def newell_normals(
    points: NDArray[np.float64], sizes: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Unnormalised Newell normal of each ring; `points` are the rings' vertices back to back.

    Coordinates are taken relative to each ring's first vertex so that large Earth-centred values
    do not cost precision.
    """
    starts = ring_starts(sizes)
    first = np.repeat(starts, sizes)
    p = points - points[first]
    nxt = np.arange(len(points)) + 1
    ends = starts + sizes
    nxt[ends - 1] = starts
    q = p[nxt]
    cross = np.cross(p, q)
    return np.add.reduceat(cross, starts, axis=0) if len(starts) else np.zeros((0, 3))


def triangulate(
    points: NDArray[np.float64],
    indices: NDArray[np.int64],
    ring_sizes: NDArray[np.int64],
    polygon_rings: NDArray[np.int64],
) -> tuple[NDArray[np.uint32], NDArray[np.uint32], int]:
    """Triangles (indices into `points`) of every polygon, the polygon of each, and the count of
    degenerate polygons (no area) that gave no triangles.

    `indices` lists the rings' vertex indices back to back; `ring_sizes` their lengths;
    `polygon_rings` how many rings each polygon has (exterior first).
    """
    if not len(polygon_rings):
        return np.zeros((0, 3), np.uint32), np.zeros(0, np.uint32), 0
    ring_pts = points[indices]
    rstarts = ring_starts(ring_sizes)
    pstarts = ring_starts(polygon_rings)  # first ring of each polygon
    outer = pstarts
    normals = newell_normals(ring_pts, ring_sizes)[outer]
    length = np.linalg.norm(normals, axis=1)
    # scale-aware degeneracy: area (|n|/2) tiny compared to the ring's extent squared
    degenerate = (length < 1e-9) | (ring_sizes[outer] < 3)
    n = normals / np.where(length == 0, 1, length)[:, None]
    # a basis (u, v) of each polygon's plane with u x v = n
    helper = np.where(np.abs(n[:, [0]]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    u = np.cross(helper, n)
    u /= np.linalg.norm(u, axis=1)[:, None].clip(1e-300)
    v = np.cross(n, u)
    poly_of_ring = np.repeat(np.arange(len(polygon_rings)), polygon_rings)
    poly_of_vertex = np.repeat(poly_of_ring, ring_sizes)
    rel = ring_pts - ring_pts[np.repeat(rstarts[outer], np.bincount(poly_of_vertex, minlength=len(polygon_rings)))]
    xy = np.column_stack(
        ((rel * u[poly_of_vertex]).sum(axis=1), (rel * v[poly_of_vertex]).sum(axis=1))
    )
    tris: list[NDArray[np.int64]] = []
    owners: list[NDArray[np.int64]] = []
    bad = 0
    sizes_list = ring_sizes.tolist()
    rstart_list = rstarts.tolist()
    for p, (first, count) in enumerate(zip(pstarts.tolist(), polygon_rings.tolist(), strict=True)):
        if degenerate[p]:
            bad += 1
            continue
        a = rstart_list[first]
        if count == 1 and sizes_list[first] == 3:
            local = np.array([[0, 1, 2]])
        else:
            b = rstart_list[first + count - 1] + sizes_list[first + count - 1]
            ends = np.cumsum(sizes_list[first: first + count], dtype=np.uint32)
            flat = mapbox_earcut.triangulate_float64(xy[a:b], ends)
            if not len(flat):
                bad += 1
                continue
            local = flat.reshape(-1, 3).astype(np.int64)
        tris.append(local + a)
        owners.append(np.full(len(local), p))
    if not tris:
        return np.zeros((0, 3), np.uint32), np.zeros(0, np.uint32), bad
    t = np.concatenate(tris)
    # keep each triangle facing the way its polygon does (earcut does not promise a winding)
    e1 = xy[t[:, 1]] - xy[t[:, 0]]
    e2 = xy[t[:, 2]] - xy[t[:, 0]]
    flip = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 0
    t[flip] = t[flip][:, [0, 2, 1]]
    return indices[t].astype(np.uint32), np.concatenate(owners).astype(np.uint32), bad


def _header(kind: int, srid: int | None, count: int) -> bytes:
    if srid is None:
        return struct.pack("<BII", 1, kind | _Z, count)
    return struct.pack("<BIII", 1, kind | _Z | _SRID, srid, count)


def ewkb_multipolygon(
    coords: NDArray[np.float64],
    indices: NDArray[np.int64],
    ring_sizes: NDArray[np.int64],
    polygon_rings: NDArray[np.int64],
    srid: int,
) -> bytes:
    """EWKB MULTIPOLYGON Z, one polygon per surface; rings are closed here."""
    pts = coords[indices]
    out = [_header(_MULTIPOLYGON, srid, len(polygon_rings))]
    starts = ring_starts(ring_sizes).tolist()
    sizes = ring_sizes.tolist()
    r = 0
    for count in polygon_rings.tolist():
        out.append(_header(_POLYGON, None, count))
        for k in range(r, r + count):
            ring = pts[starts[k]: starts[k] + sizes[k]]
            if sizes[k] < 3:  # degenerate ring: pad so PostGIS accepts it, nothing dropped
                ring = np.vstack((ring, np.repeat(ring[-1:], 3 - sizes[k], axis=0)))
            out.append(struct.pack("<I", len(ring) + 1))
            out.append(ring.tobytes())
            out.append(ring[0].tobytes())
        r += count
    return b"".join(out)


def ewkb_multilinestring(
    coords: NDArray[np.float64], indices: NDArray[np.int64], sizes: NDArray[np.int64], srid: int
) -> bytes:
    """EWKB MULTILINESTRING Z."""
    pts = coords[indices]
    out = [_header(_MULTILINESTRING, srid, len(sizes))]
    start = 0
    for size in sizes.tolist():
        out.append(_header(_LINESTRING, None, size))
        out.append(pts[start: start + size].tobytes())
        start += size
    return b"".join(out)


def ewkb_multipoint(coords: NDArray[np.float64], indices: NDArray[np.int64], srid: int) -> bytes:
    """EWKB MULTIPOINT Z."""
    pts = coords[indices]
    out = [_header(_MULTIPOINT, srid, len(pts))]
    for p in pts:
        out.append(struct.pack("<BI", 1, _POINT | _Z))
        out.append(p.tobytes())
    return b"".join(out)


def ewkb_polygon_2d(rings: list[NDArray[np.float64]], srid: int) -> bytes:
    """EWKB POLYGON (2D) from closed or unclosed rings of (x, y)."""
    out = [struct.pack("<BIII", 1, _POLYGON | _SRID, srid, len(rings))]
    for ring in rings:
        closed = ring if len(ring) and np.array_equal(ring[0], ring[-1]) else np.vstack((ring, ring[:1]))
        out.append(struct.pack("<I", len(closed)))
        out.append(np.ascontiguousarray(closed, dtype=np.float64).tobytes())
    return b"".join(out)


def ewkb_multipolygon_2d(polygons: list[list[NDArray[np.float64]]], srid: int) -> bytes:
    """EWKB MULTIPOLYGON (2D)."""
    out = [struct.pack("<BIII", 1, _MULTIPOLYGON | _SRID, srid, len(polygons))]
    for rings in polygons:
        out.append(struct.pack("<BII", 1, _POLYGON, len(rings)))
        for ring in rings:
            closed = np.vstack((ring, ring[:1]))
            out.append(struct.pack("<I", len(closed)))
            out.append(np.ascontiguousarray(closed, dtype=np.float64).tobytes())
    return b"".join(out)


def convex_hull_2d(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Counter-clockwise convex hull of 2D points (Andrew's monotone chain)."""
    pts = np.unique(points[:, :2], axis=0)
    if len(pts) < 3:
        return pts

    def half(seq: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        chain: list[NDArray[np.float64]] = []
        for p in seq:
            while len(chain) >= 2:
                o, a = chain[-2], chain[-1]
                if (a[0] - o[0]) * (p[1] - o[1]) - (a[1] - o[1]) * (p[0] - o[0]) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower = half(pts)
    upper = half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])
