"""Buildings kept in a PostGIS table (pg2b3dm's and py3dtiles' users keep theirs so), read as
city objects without going through a file.

One row is one object: its id from the id column, its attributes from the other columns (typed
by PostgreSQL's own JSON: text stays text, numbers stay numbers, dates become ISO 8601 text, json
stays nested). The geometry decides the rest:
- 3D surfaces (MULTIPOLYGON Z, POLYHEDRALSURFACE Z, TIN Z, POLYGON Z, TRIANGLE Z) keep every
  vertex: each polygon, patch or triangle becomes a surface, vertical walls included, typed by
  its orientation (ingest/surface_types.py);
- 2D polygons (or 3D ones lying flat) are footprints: extruded by the height column like
  ingest/footprints.py does, or kept as LoD0 footprints when they have no usable height.
Anything else (GEOMETRYCOLLECTION, points, lines, curves) is refused, naming the row.

Rows are read in one read-only, repeatable-read transaction through a server-side cursor, a
batch at a time, so memory stays bounded whatever the table's size and the rows counted, hashed
and read are the same rows. What the table is (its columns, SRID, the choices made) is read
first, by ingest/pgcatalog.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.ewkb import OTHERS, SURFACES, EwkbError, Surfaces, read_surfaces
from ingest.footprints import (
    FLOOR_NAMES,
    HEIGHT_NAMES,
    MAX_HEIGHT_M,
    _extruded,
    _footprint,
    _number,
)
from ingest.model import ReadOptions, SourceGeometry, SourceObject
from ingest.pgcatalog import TableLayout, connect
from ingest.pgsource import TableSource
from ingest.surface_types import local_up, surface_types

BATCH = 2000  # rows fetched per round trip from the server-side cursor
FLAT_M = 0.001  # a 3D geometry whose heights vary less than this is a footprint
_CURVES = {8, 9, 10, 11, 12}


@dataclass
class _Rings:
    """Surfaces flattened as SourceGeometry wants them: rings not closed, one after another."""

    points: NDArray[np.float64]
    ring_sizes: list[int]
    polygon_rings: list[int]

    def polygons(self) -> list[list[NDArray[np.float64]]]:
        """Each polygon as its rings."""
        rings = np.split(self.points, np.cumsum(self.ring_sizes)[:-1])
        at = np.concatenate(([0], np.cumsum(self.polygon_rings))).tolist()
        return [rings[a:b] for a, b in zip(at[:-1], at[1:], strict=True)]


def _open_rings(read: Surfaces) -> _Rings:
    """The rings without their closing point; empty rings and polygons dropped.

    Raises:
        ValueError: a ring that is not closed or has fewer than 3 points, named.
    """
    sizes = np.array(read.ring_sizes, dtype=np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    present = np.flatnonzero(sizes > 0)
    points = read.points
    unclosed = (points[starts[present]] != points[ends[present] - 1]).any(axis=1)
    bad = (sizes[present] < 4) | unclosed
    if bad.any():
        ring = int(present[np.argmax(bad)])
        first = np.concatenate(([0], np.cumsum(read.polygon_rings)))
        surface = int(np.searchsorted(first, ring, side="right") - 1)
        raise ValueError(
            f"surface {surface}, ring {ring - int(first[surface])} of its {read.type} is not a "
            f"closed ring of at least 3 points ({int(sizes[ring])} points)"
        )
    keep = np.ones(len(points), dtype=bool)
    keep[ends[present] - 1] = False
    owner = np.repeat(np.arange(len(read.polygon_rings)), read.polygon_rings)
    kept = np.bincount(owner[present], minlength=len(read.polygon_rings))
    return _Rings(points[keep], (sizes[present] - 1).tolist(), kept[kept > 0].tolist())


def _signed_area(ring: NDArray[np.float64]) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _oriented(polygons: list[list[NDArray[np.float64]]]) -> list[list[NDArray[np.float64]]]:
    """Footprint polygons seen from above: exterior counter-clockwise, holes clockwise."""
    out = []
    for rings in polygons:
        fixed = []
        for k, ring in enumerate(rings):
            ccw = _signed_area(ring) > 0
            fixed.append(ring[::-1] if ccw == (k > 0) else ring)
        out.append(fixed)
    return out


class PostGisTableReader:
    """A PostGIS table opened for reading; `objects()` streams one city object per row."""

    format = "PostGIS table"
    axis_order = "xy"  # PostGIS stores x = easting / longitude whatever the CRS declares

    def __init__(self, source: TableSource, options: ReadOptions | None = None) -> None:
        self.source = source
        self.path = str(source)
        self.options = options or ReadOptions()
        self.appearance: dict[str, Any] = {}
        self._conn = connect(source)
        try:
            self.layout = TableLayout(self._conn, source, self.options)
        except BaseException:
            self._conn.close()
            raise
        layout = self.layout
        self.format_version: str | None = layout.version
        self.crs_name: str | None = layout.crs_name
        self.frame = layout.frame
        self.total_objects: int | None = layout.rows
        self.checksum = layout.checksum
        self.metadata: dict[str, Any] = layout.metadata
        self.warnings: list[str] = list(layout.warnings)
        self._counts = dict.fromkeys(
            ("solid", "flat", "no_geometry", "no_height", "reversed", "height_unused", "m"), 0
        )

    def _fail(self, problem: str, row: str | None = None) -> IngestError:
        return IngestError(self.path, self.source.hide(problem), row)

    def objects(self) -> Iterator[SourceObject]:
        """Yield one city object per row, in the order of the id column."""
        try:
            with self._conn.cursor(name="cim_ingest_rows") as cur:
                cur.itersize = BATCH
                cur.execute(self.layout.select())
                previous: str | None = None
                for oid, ewkb, attributes, height, floors, base in cur:
                    if oid is None:
                        raise self._fail(
                            f"a row has no id (column {self.layout.id_column} is NULL"
                            + (f", after id {previous!r}" if previous is not None else "")
                            + ")"
                        )
                    previous = oid
                    yield self._object(oid, ewkb, attributes or {}, height, floors, base)
        except psycopg.Error as exc:
            raise self._fail(f"reading the rows: {exc}") from None
        self._report()

    def _object(
        self,
        oid: str,
        ewkb: bytes | None,
        attributes: dict[str, Any],
        height: str | None,
        floors: str | None,
        base: str | None,
    ) -> SourceObject:
        obj = SourceObject(oid, self.source.object_type or "Building", attributes, [], [], [])
        if ewkb is None:
            self._counts["no_geometry"] += 1
            return obj
        try:
            read = read_surfaces(ewkb)
        except EwkbError as exc:
            raise self._fail(
                f"its geometry (column {self.layout.geometry_column}): {exc}", oid
            ) from None
        if read.code not in SURFACES:
            raise self._fail(self._refusal(read.type, read.code), oid)
        if read.has_m:
            self._counts["m"] += 1
        try:
            rings = _open_rings(read)
        except ValueError as exc:
            raise self._fail(str(exc), oid) from None
        if not rings.ring_sizes:
            self._counts["no_geometry"] += 1
            return obj
        geocentric = self.frame == "geocentric"  # no up to extrude along: kept as it is
        if not geocentric and (
            not read.has_z or np.ptp(local_up(rings.points, self.frame)[:, 2]) < FLAT_M
        ):
            obj.geometries.append(self._extrude(rings, read.has_z, height, floors, base))
        else:
            obj.geometries.append(self._surfaces(rings, read.type, read.code))
        return obj

    def _refusal(self, kind: str, code: int) -> str:
        column = self.layout.geometry_column
        what = f"its geometry (column {column}) is a {kind}"
        if code == 7:
            return (
                f"{what}: a row is one building of polygons, polyhedral surfaces or TINs; read "
                f"its polygons through a view with ST_CollectionExtract({column}, 3), or split "
                "the collection into rows"
            )
        if code in _CURVES:
            return f"{what}: curves are not read; use a view with ST_CurveToLine"
        name = OTHERS.get(code, kind)
        return (
            f"{what}: only POLYGON, MULTIPOLYGON, POLYHEDRALSURFACE, TIN and TRIANGLE rows can "
            f"become buildings, not {name}"
        )

    def _surfaces(self, rings: _Rings, kind: str, code: int) -> SourceGeometry:
        """Every vertex kept; each polygon, patch or triangle one surface."""
        self._counts["solid"] += 1
        if self.layout.explicit_height:
            self._counts["height_unused"] += 1
        orientation = surface_types(rings.points, rings.ring_sizes, rings.polygon_rings, self.frame)
        if orientation.reversed:
            self._counts["reversed"] += 1
        types = orientation.types
        kinds = sorted({t for t in types if t})
        gtype = "MultiSurface" if code in (3, 6) else "CompositeSurface"
        structure: dict[str, Any] = {
            "type": gtype,
            "lod": self.source.lod,
            "source": f"PostGIS {kind}",
            "closed": orientation.closed,
            "semantics_from": "surface orientation",
            "semantics": {
                "surfaces": [{"type": k} for k in kinds],
                "values": [kinds.index(t) if t else None for t in types],
            },
        }
        return SourceGeometry(
            type=gtype,
            lod=self.source.lod,
            kind="surface",
            vertices=rings.points,
            indices=range(len(rings.points)),
            ring_sizes=rings.ring_sizes,
            polygon_rings=rings.polygon_rings,
            structure=structure,
            surface_semantics=types,
        )

    def _extrude(
        self,
        rings: _Rings,
        has_z: bool,
        height: str | None,
        floors: str | None,
        base: str | None,
    ) -> SourceGeometry:
        """A footprint: extruded by its height (LoD1), else kept flat (LoD0)."""
        self._counts["flat"] += 1
        h: float | None = None
        if self.layout.height_column:
            h = _number(height)
        elif self.layout.floors_column:
            n = _number(floors)
            h = n * self.options.storey_height if n is not None else None
        if h is not None and not 0 < h <= MAX_HEIGHT_M:
            h = None
        bottom = _number(base) if self.layout.base_column else None
        if bottom is None:
            bottom = float(rings.points[:, 2].min()) if has_z else 0.0
        oriented = _oriented(rings.polygons())
        if h is None:
            if self.layout.height_column or self.layout.floors_column:
                self._counts["no_height"] += 1
            geometry = _footprint(oriented, bottom)
        else:
            geometry = _extruded(oriented, bottom, bottom + h)
        geometry.structure["source"] = "PostGIS footprint extrusion"
        return geometry

    def _report(self) -> None:
        """Say what became of the rows: nothing is dropped or guessed without a word."""
        c = self._counts

        def rows(n: int, what: str = "row") -> str:
            return f"1 {what} is" if n == 1 else f"{n:,} {what}s are"

        said: list[str] = []
        if c["solid"]:
            said.append(
                f"{rows(c['solid'])} 3D surfaces, kept vertex for vertex; their surface types "
                "(roof, wall, ground, outer ceiling) were inferred from each surface's orientation"
                + ("" if self.source.lod else "; no LoD is claimed for them (give --lod)")
            )
        if c["reversed"]:
            said.append(
                f"{rows(c['reversed'])} closed shells whose surfaces face inwards: their surface "
                "types were read with the orientation reversed (vertices kept as stored)"
            )
        if c["height_unused"]:
            said.append(
                f"{rows(c['height_unused'])} 3D surfaces: the height column was not used for "
                "them (it extrudes 2D or flat footprints)"
            )
        what = self.layout.height_column or self.layout.floors_column
        if c["flat"] and not what:
            said.append(
                f"{rows(c['flat'])} 2D footprints and no height column was found (looked for "
                + ", ".join(HEIGHT_NAMES + FLOOR_NAMES)
                + "): kept as LoD0 footprints; give --height-column or --floors-column to extrude"
            )
        if c["no_height"]:
            said.append(
                f"{rows(c['no_height'], 'footprint')} without a usable height in {what!r} "
                "(missing, not a number, not above 0 or above 1000 m): kept as LoD0 footprints"
            )
        if c["no_geometry"]:
            said.append(
                f"{rows(c['no_geometry'])} without geometry (NULL or empty): kept with "
                "attributes only"
            )
        if c["m"]:
            said.append(f"{rows(c['m'])} measured (M values): the M values were not kept")
        self.warnings += [s for s in said if s not in self.warnings]

    def close(self) -> None:
        """End the read-only transaction and the connection."""
        if not self._conn.closed:
            self._conn.rollback()
            self._conn.close()
