"""EWKB (PostGIS's extended well-known binary, and ISO WKB) read into polygons with rings.

Our own parser rather than shapely's: GEOS reads neither POLYHEDRALSURFACE nor TIN, the types
pg2b3dm's users keep their buildings in, and a surface reader needs no more than rings of
coordinates. The structure (headers and counts) is walked in Python; the coordinates of every
ring are then gathered in one vectorised copy. Every count is checked against the bytes left, so
a corrupt value is an error, never a huge allocation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

_Z, _M, _SRID = 0x80000000, 0x40000000, 0x20000000
SURFACES = {3: "POLYGON", 6: "MULTIPOLYGON", 15: "POLYHEDRALSURFACE", 16: "TIN", 17: "TRIANGLE"}
_PARTS = {6: {3}, 15: {3}, 16: {17}}  # the parts a collection of surfaces may hold
OTHERS = {
    1: "POINT",
    2: "LINESTRING",
    4: "MULTIPOINT",
    5: "MULTILINESTRING",
    7: "GEOMETRYCOLLECTION",
    8: "CIRCULARSTRING",
    9: "COMPOUNDCURVE",
    10: "CURVEPOLYGON",
    11: "MULTICURVE",
    12: "MULTISURFACE",
}


_STRUCTS = {f: struct.Struct(f) for f in ("B", "<I", ">I")}


class EwkbError(ValueError):
    """Bytes that are not the geometry they claim to be."""


@dataclass
class Surfaces:
    """A geometry read as polygons, flattened: `points` holds every ring's points as stored
    (closed), ring after ring; `ring_sizes` their counts; `polygon_rings` each polygon's ring
    count, exterior first. z is 0 when the geometry has none; an M value is not kept."""

    type: str  # "POLYHEDRALSURFACE Z", "MULTIPOLYGON", "GEOMETRYCOLLECTION Z", ...
    code: int  # the base type code (3, 6, 15, 16, 17; others mean "not surfaces")
    srid: int | None
    has_z: bool
    has_m: bool
    points: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    ring_sizes: list[int] = field(default_factory=list)
    polygon_rings: list[int] = field(default_factory=list)

    @property
    def polygons(self) -> list[list[NDArray[np.float64]]]:
        """Each polygon as its rings, (n, 3) arrays."""
        rings = np.split(self.points, np.cumsum(self.ring_sizes)[:-1]) if self.ring_sizes else []
        out, at = [], 0
        for n in self.polygon_rings:
            out.append(rings[at : at + n])
            at += n
        return out


class _Walk:
    """The structure of a geometry: where each ring's coordinates start, and how many."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.ring_at: list[int] = []
        self.ring_sizes: list[int] = []
        self.ring_orders: list[str] = []

    def take(self, fmt: str) -> tuple[int, ...]:
        reader = _STRUCTS[fmt]
        if self.pos + reader.size > len(self.data):
            raise EwkbError(f"truncated at byte {self.pos}")
        values = reader.unpack_from(self.data, self.pos)
        self.pos += reader.size
        return values

    def header(self) -> tuple[str, int, bool, bool, int | None]:
        """Byte order, base type code, Z, M and SRID of the geometry starting here."""
        (order,) = self.take("B")
        if order not in (0, 1):
            raise EwkbError(f"byte {self.pos - 1} is not a byte order mark (0 or 1)")
        endian = "<" if order == 1 else ">"
        (code,) = self.take(endian + "I")
        has_z, has_m = bool(code & _Z), bool(code & _M)
        srid = self.take(endian + "I")[0] if code & _SRID else None
        base = code & 0x0FFFFFFF
        if base >= 1000:  # ISO WKB: 1000 Z, 2000 M, 3000 ZM
            iso, base = divmod(base, 1000)
            has_z, has_m = has_z or iso in (1, 3), has_m or iso in (2, 3)
        return endian, base, has_z, has_m, srid

    def polygon(self, endian: str, dims: int) -> int:
        """Note a polygon's rings; returns how many it has. (A tight loop: a building is tens
        of polygons, a table millions of buildings.)"""
        unpack = _STRUCTS[endian + "I"].unpack_from
        data, pos, end, width = self.data, self.pos, len(self.data), dims * 8
        if pos + 4 > end:
            raise EwkbError(f"truncated at byte {pos}")
        (rings,) = unpack(data, pos)
        pos += 4
        for _ in range(rings):
            if pos + 4 > end:
                raise EwkbError(f"truncated at byte {pos}")
            (n,) = unpack(data, pos)
            pos += 4
            if pos + n * width > end:
                raise EwkbError(f"a ring of {n:,} points runs past the end of the geometry")
            self.ring_at.append(pos)
            self.ring_sizes.append(n)
            self.ring_orders.append(endian)
            pos += n * width
        self.pos = pos
        return int(rings)


def _type_name(code: int, has_z: bool, has_m: bool) -> str:
    name = SURFACES.get(code) or OTHERS.get(code) or f"geometry type {code}"
    return name + (" " + ("Z" if has_z else "") + ("M" if has_m else "")).rstrip()


def _gather(walk: _Walk, dims: int, has_z: bool) -> NDArray[np.float64]:
    """Every ring's coordinates in one copy: the bytes of all rings, read as doubles."""
    sizes = np.array(walk.ring_sizes, dtype=np.int64) * dims * 8
    total = int(sizes.sum())
    if total == 0:
        return np.zeros((0, 3))
    if ">" in walk.ring_orders:  # big-endian (rare): ring by ring, each in its own order
        values = _per_ring(walk, dims)
    else:
        starts = np.array(walk.ring_at, dtype=np.int64)
        first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        index = np.repeat(starts - first, sizes) + np.arange(total)
        values = np.frombuffer(walk.data, dtype=np.uint8)[index].view("<f8").reshape(-1, dims)
    out = np.zeros((len(values), 3))
    out[:, :2] = values[:, :2]
    if has_z:
        out[:, 2] = values[:, 2]  # x y z [m]; the m of x y m is not a height
    return out


def _per_ring(walk: _Walk, dims: int) -> NDArray[np.float64]:
    """Coordinates ring by ring, each in the byte order its geometry's header gives."""
    parts = []
    for at, n, endian in zip(walk.ring_at, walk.ring_sizes, walk.ring_orders, strict=True):
        parts.append(
            np.frombuffer(walk.data, dtype=endian + "f8", count=n * dims, offset=at).reshape(
                n, dims
            )
        )
    return np.vstack(parts).astype(np.float64) if parts else np.zeros((0, dims))


def read_surfaces(data: bytes) -> Surfaces:
    """Polygons of a POLYGON, MULTIPOLYGON, POLYHEDRALSURFACE, TIN or TRIANGLE (any of Z, M).

    Another type is returned with no polygons and its `code`, for the caller to refuse by name.

    Raises:
        EwkbError: the bytes are truncated or inconsistent.
    """
    walk = _Walk(bytes(data))
    endian, code, has_z, has_m, srid = walk.header()
    dims = 2 + has_z + has_m
    out = Surfaces(_type_name(code, has_z, has_m), code, srid, has_z, has_m)
    if code not in SURFACES:
        return out
    if code in (3, 17):
        out.polygon_rings.append(walk.polygon(endian, dims))
    else:
        (n,) = walk.take(endian + "I")
        for k in range(n):
            part_endian, part, part_z, part_m, _ = walk.header()
            if part not in _PARTS[code] or (part_z, part_m) != (has_z, has_m):
                raise EwkbError(f"part {k} of a {out.type} is a {_type_name(part, part_z, part_m)}")
            out.polygon_rings.append(walk.polygon(part_endian, dims))
    if walk.pos != len(walk.data):
        raise EwkbError(f"{len(walk.data) - walk.pos} bytes left after the geometry")
    out.points = _gather(walk, dims, has_z)
    out.ring_sizes = walk.ring_sizes
    return out
