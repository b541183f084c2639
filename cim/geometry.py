"""Geometry helpers, vectorised over whole batches: triangulating planar polygons in 3D, and
writing EWKB for many geometries at once.

Polygons are triangulated once, at ingest, on their best-fit plane (Newell normal), holes kept,
so that tiling only concatenates vertex buffers. Triangles keep the orientation of the polygon's
exterior ring, which CityJSON and CityGML define as facing outwards.

Coordinates arrive as one (n, 3) array of ring vertices back to back (rings are not closed);
`ring_sizes` splits it into rings and `polygon_rings` groups rings into polygons (exterior first).

Earcut triangulates the polygons of up to EARCUT_VERTICES vertices (nearly all of them), the larger
ones a sweep in O(n log n) (cim/monotone.py): earcut's time grows with the square of a polygon's
vertices in the worst case (32,000 holes: minutes). No polygon may exceed MAX_SURFACE_VERTICES or
MAX_SURFACE_RINGS: the ingest refuses it, and `triangulate` leaves it without triangles.
"""

from __future__ import annotations

import struct

import mapbox_earcut
import numpy as np
from numpy.typing import NDArray

from cim.monotone import triangulate_polygon

MAX_SURFACE_VERTICES = 250_000  # about 2 s to triangulate: far beyond any real face
MAX_SURFACE_RINGS = 50_000  # the exterior and 49,999 holes
EARCUT_VERTICES = 1_000  # earcut's worst case here: about 10 ms
EARCUT_FALLBACK_VERTICES = 5_000  # where rings touch (the sweep gives up): earcut, about 0.1 s

_Z = 0x80000000
_SRID = 0x20000000
_POINT, _POLYGON, _MULTIPOINT, _MULTIPOLYGON = 1, 3, 4, 6

Int = NDArray[np.int64]
Float = NDArray[np.float64]


def starts_of(sizes: Int) -> Int:
    """Start offset of each segment given the segment sizes."""
    starts = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1], out=starts[1:])
    return starts


def segment_sums(values: Int, starts: Int, sizes: Int) -> Int:
    """Sum of each segment `values[start:start+size]`; empty segments sum to 0."""
    csum = np.concatenate(([0], np.cumsum(values)))
    return csum[starts + sizes] - csum[starts]


def segment_min_max(values: Float, sizes: Int) -> tuple[Float, Float]:
    """Per-segment minimum and maximum of rows of `values`; segments must not be empty."""
    starts = starts_of(sizes)
    return np.minimum.reduceat(values, starts, axis=0), np.maximum.reduceat(values, starts, axis=0)


def newell_normals(points: Float, sizes: Int) -> Float:
    """Unnormalised Newell normal of each ring (rings of at least one vertex).

    Coordinates are taken relative to each ring's first vertex so that large Earth-centred values
    do not cost precision.
    """
    starts = starts_of(sizes)
    p = points - points[np.repeat(starts, sizes)]
    nxt = np.arange(len(points)) + 1
    nxt[starts + sizes - 1] = starts
    return np.add.reduceat(np.cross(p, p[nxt]), starts, axis=0)


def triangulate(points: Float, ring_sizes: Int, polygon_rings: Int) -> tuple[Int, Int, int]:
    """Triangles of every polygon as indices into `points`, the polygon of each triangle (in
    polygon order), and the number of polygons that gave no triangles: degenerate ones (no area),
    those beyond the size limits, and those of more than EARCUT_FALLBACK_VERTICES vertices whose
    rings cross or touch."""
    n_poly = len(polygon_rings)
    if n_poly == 0:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64), 0
    rstarts = starts_of(ring_sizes)
    first_ring = starts_of(polygon_rings)
    outer_start = rstarts[first_ring]
    outer_size = ring_sizes[first_ring]
    normals = newell_normals(points, ring_sizes)[first_ring]
    length = np.linalg.norm(normals, axis=1)
    degenerate = (length < 1e-9) | (outer_size < 3)
    n = normals / np.where(length == 0, 1, length)[:, None]
    helper = np.where(np.abs(n[:, [0]]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    u = np.cross(helper, n)
    u /= np.linalg.norm(u, axis=1).clip(1e-300)[:, None]
    v = np.cross(n, u)
    verts_per_poly = np.add.reduceat(ring_sizes, first_ring)
    poly_of_vertex = np.repeat(np.arange(n_poly), verts_per_poly)
    rel = points - points[np.repeat(outer_start, verts_per_poly)]
    xy = np.column_stack(
        (
            np.einsum("ij,ij->i", rel, u[poly_of_vertex]),
            np.einsum("ij,ij->i", rel, v[poly_of_vertex]),
        )
    )

    simple = (polygon_rings == 1) & ~degenerate
    tris: list[Int] = []
    owners: list[Int] = []
    # triangles: as they are
    tri = np.flatnonzero(simple & (outer_size == 3))
    if len(tri):
        a = outer_start[tri]
        tris.append(np.column_stack((a, a + 1, a + 2)))
        owners.append(tri)
    # convex quadrilaterals: split along a diagonal
    quad = np.flatnonzero(simple & (outer_size == 4))
    if len(quad):
        a = outer_start[quad]
        q = xy[a[:, None] + np.arange(4)]
        e = np.roll(q, -1, axis=1) - q
        turn = (
            e[:, :, 0] * np.roll(e, -1, axis=1)[:, :, 1]
            - e[:, :, 1] * np.roll(e, -1, axis=1)[:, :, 0]
        )
        convex = (turn > 0).all(axis=1)
        a_c = a[convex]
        tris.append(np.column_stack((a_c, a_c + 1, a_c + 2)))
        tris.append(np.column_stack((a_c, a_c + 2, a_c + 3)))
        owners.extend([quad[convex], quad[convex]])
        rest_mask = np.ones(n_poly, dtype=bool)
        rest_mask[tri] = False
        rest_mask[quad[convex]] = False
    else:
        rest_mask = np.ones(n_poly, dtype=bool)
        rest_mask[tri] = False
    rest_mask &= ~degenerate
    bad = int(degenerate.sum())
    ends_local = rstarts + ring_sizes - outer_start[np.repeat(np.arange(n_poly), polygon_rings)]
    ends_u32: NDArray[np.uint32] = ends_local.astype(np.uint32)
    rest = np.flatnonzero(rest_mask).tolist()
    if rest:
        fr = first_ring.tolist()
        pr = polygon_rings.tolist()
        os_ = outer_start.tolist()
        vp = verts_per_poly.tolist()
        earcut = mapbox_earcut.triangulate_float64
        found: list[Int] = []
        found_owner: list[int] = []
        found_len: list[int] = []
        for p in rest:
            a = os_[p]
            ends = ends_u32[fr[p] : fr[p] + pr[p]]
            flat: NDArray[np.integer]
            if vp[p] <= EARCUT_VERTICES:
                flat = earcut(xy[a : a + vp[p]], ends)
            else:
                flat = _large_polygon(xy[a : a + vp[p]], ends)
            if len(flat) == 0:
                bad += 1
                continue
            found.append(flat.astype(np.int64) + a)
            found_owner.append(p)
            found_len.append(len(flat) // 3)
        if found:
            tris.append(np.concatenate(found).reshape(-1, 3))
            owners.append(np.repeat(np.array(found_owner, dtype=np.int64), found_len))
    if not tris:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64), bad
    t = np.concatenate(tris)
    owner = np.concatenate(owners)
    order = np.argsort(owner, kind="stable")
    t, owner = t[order], owner[order]
    # keep each triangle facing the way its polygon does (earcut does not promise a winding)
    e1 = xy[t[:, 1]] - xy[t[:, 0]]
    e2 = xy[t[:, 2]] - xy[t[:, 0]]
    flip = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 0
    t[flip] = t[flip][:, [0, 2, 1]]
    return t, owner, bad


def _large_polygon(xy: Float, ends: NDArray[np.uint32]) -> NDArray[np.integer]:
    """Triangles (flat) of a polygon of more than EARCUT_VERTICES vertices, none beyond the
    limits or where its rings cross or touch and it is too large for earcut's worst case."""
    if len(xy) > MAX_SURFACE_VERTICES or len(ends) > MAX_SURFACE_RINGS:
        return np.zeros(0, np.int64)
    triangles = triangulate_polygon(xy, ends.astype(np.int64))
    if triangles is not None:
        return triangles.ravel()
    if len(xy) <= EARCUT_FALLBACK_VERTICES:
        return mapbox_earcut.triangulate_float64(xy, ends)
    return np.zeros(0, np.int64)


def _put_u32(buf: NDArray[np.uint8], at: Int, values: Int) -> None:
    buf[at[:, None] + np.arange(4)] = np.asarray(values, dtype="<u4").view(np.uint8).reshape(-1, 4)


def _put_header(
    buf: NDArray[np.uint8], at: Int, kind: int, counts: Int, srid: int | None, dims: int
) -> Int:
    """Write byte order, type (with Z and SRID flags) [, SRID], count; return the offset after."""
    buf[at] = 1
    flags = kind | (_Z if dims == 3 else 0) | (_SRID if srid is not None else 0)
    _put_u32(buf, at + 1, np.full(len(at), flags))
    pos = at + 5
    if srid is not None:
        _put_u32(buf, pos, np.full(len(at), srid))
        pos = pos + 4
    _put_u32(buf, pos, counts)
    return pos + 4


def ewkb_multipolygons(
    coords: Float,
    ring_sizes: Int,
    polygon_rings: Int,
    geometry_polygons: Int,
    srid: int,
    dims: int = 3,
) -> list[bytes]:
    """EWKB MULTIPOLYGON (Z) of many geometries at once; rings are closed here, and rings of
    fewer than three vertices padded by repeating their last vertex (PostGIS refuses them)."""
    n_geom = len(geometry_polygons)
    if n_geom == 0:
        return []
    rstarts = starts_of(ring_sizes)
    padded = np.maximum(ring_sizes, 3)
    # vertex index of every output point: the ring's vertices, padding, then the first again
    npts = padded + 1
    ring_of_pt = np.repeat(np.arange(len(ring_sizes)), npts)
    k = np.arange(npts.sum()) - np.repeat(starts_of(npts), npts)
    k = np.where(k == np.repeat(padded, npts), 0, np.minimum(k, np.repeat(ring_sizes - 1, npts)))
    pts = coords[rstarts[ring_of_pt] + k][:, :dims]

    point_bytes = 8 * dims
    ring_bytes = 4 + npts * point_bytes
    poly_first_ring = starts_of(polygon_rings)
    poly_bytes = 9 + segment_sums(ring_bytes, poly_first_ring, polygon_rings)
    geom_first_poly = starts_of(geometry_polygons)
    header = 13
    geom_bytes = header + segment_sums(poly_bytes, geom_first_poly, geometry_polygons)
    geom_at = starts_of(geom_bytes)
    buf = np.zeros(int(geom_bytes.sum()), dtype=np.uint8)
    _put_header(buf, geom_at, _MULTIPOLYGON, geometry_polygons, srid, dims)
    if len(polygon_rings):
        poly_excl = starts_of(poly_bytes)
        geom_of_poly = np.repeat(np.arange(n_geom), geometry_polygons)
        poly_at = (
            geom_at[geom_of_poly] + header + poly_excl - poly_excl[geom_first_poly[geom_of_poly]]
        )
        _put_header(buf, poly_at, _POLYGON, polygon_rings, None, dims)
        ring_excl = starts_of(ring_bytes)
        poly_of_ring = np.repeat(np.arange(len(polygon_rings)), polygon_rings)
        ring_at = poly_at[poly_of_ring] + 9 + ring_excl - ring_excl[poly_first_ring[poly_of_ring]]
        _put_u32(buf, ring_at, npts)
        pt_at = (
            np.repeat(ring_at + 4, npts)
            + (np.arange(len(pts)) - np.repeat(starts_of(npts), npts)) * point_bytes
        )
        buf[pt_at[:, None] + np.arange(point_bytes)] = (
            np.ascontiguousarray(pts, dtype="<f8").view(np.uint8).reshape(-1, point_bytes)
        )
    raw = buf.tobytes()
    ends = geom_at + geom_bytes
    return [raw[a:b] for a, b in zip(geom_at.tolist(), ends.tolist(), strict=True)]


_POINT_HEAD = struct.pack("<BI", 1, _POINT | _Z)  # byte order, type: 5 bytes before x, y, z
_MULTIPOINT_HEAD = struct.Struct("<BIII")


def ewkb_multipoints(coords: Float, geometry_points: Int, srid: int) -> list[bytes]:
    """EWKB MULTIPOINT Z of many geometries at once: the points as packed 29-byte records (made
    as one (n, 29) byte array, several times faster than a packed record dtype), each geometry
    its 13-byte header and its run of records (sliced from a memoryview: copied once, into the
    result)."""
    records = np.empty((len(coords), 29), dtype=np.uint8)
    records[:, :5] = np.frombuffer(_POINT_HEAD, dtype=np.uint8)
    for k in range(3):  # x, y, z written column by column, whatever the layout of `coords`
        records[:, 5 + 8 * k : 13 + 8 * k].view("<f8")[:, 0] = coords[:, k]
    raw = memoryview(records.reshape(-1).data)
    flags = _MULTIPOINT | _Z | _SRID
    out = []
    at = 0
    for count in np.asarray(geometry_points).tolist():
        end = at + count * 29
        out.append(_MULTIPOINT_HEAD.pack(1, flags, srid, count) + raw[at:end])
        at = end
    return out


def ewkb_boxes(lo: Float, hi: Float, srid: int) -> list[bytes]:
    """EWKB POLYGON (2D) rectangles from per-row minimum and maximum (x, y)."""
    n = len(lo)
    x0, y0, x1, y1 = lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]
    ring = np.stack([x0, y0, x1, y0, x1, y1, x0, y1, x0, y0], axis=1).astype("<f8")
    head = np.zeros((n, 17), dtype=np.uint8)
    head[:, 0] = 1
    head[:, 1:5] = np.array([_POLYGON | _SRID], dtype="<u4").view(np.uint8)
    head[:, 5:9] = np.array([srid], dtype="<u4").view(np.uint8)
    head[:, 9:13] = np.array([1], dtype="<u4").view(np.uint8)
    head[:, 13:17] = np.array([5], dtype="<u4").view(np.uint8)
    rows = np.concatenate((head, ring.view(np.uint8).reshape(n, 80)), axis=1)
    raw = rows.tobytes()
    return [raw[i * 97 : (i + 1) * 97] for i in range(n)]


def ewkb_multilinestring(coords: Float, line_sizes: Int, srid: int) -> bytes:
    """EWKB MULTILINESTRING Z of one geometry (lines are rare: no batch version needed)."""
    import struct

    out = [struct.pack("<BIII", 1, 5 | _Z | _SRID, srid, len(line_sizes))]
    start = 0
    for size in line_sizes.tolist():
        out.append(struct.pack("<BII", 1, 2 | _Z, size))
        out.append(np.ascontiguousarray(coords[start : start + size], dtype="<f8").tobytes())
        start += size
    return b"".join(out)
