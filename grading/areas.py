"""The area a city's area-based model indicators are computed over: its administrative or
built-up boundary, from a file the committee supplies.

The file (GeoJSON, GeoPackage, KML, or a zipped Shapefile, in any CRS that names itself or is
named with `crs`) is kept as evidence of the round under its SHA-256; its polygons are merged,
checked (valid rings, inside the CRS's area of use, a plausible size) and stored in lon/lat with
their size on the WGS 84 ellipsoid. Without a declared area, coverage and density indicators
are not computed: the convex hull of whatever buildings happen to be loaded is no city's area.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyogrio
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.polygon import orient
from shapely.validation import explain_validity
from sqlalchemy import Connection, Engine, text

from cim.crs import crs_label
from cim.errors import InvalidInput, NotFound
from grading.access import Actor, audit, require, require_round
from grading.evidence import EvidenceFile, store_evidence
from grading.store import require_city, require_draft, round_row

KINDS = {
    "administrative": ("行政区域", "administrative area"),
    "built_up": ("建成区", "built-up area"),
}
MAX_KM2 = 500_000.0  # larger than any city; a bigger "area" is a unit or CRS mistake
MIN_KM2 = 0.01  # one hectare: smaller is a unit or CRS mistake (degrees read as metres)
_WGS84 = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Boundary:
    """A boundary as read from a file: one multipolygon in lon/lat (EPSG:4326)."""

    geom: MultiPolygon
    area_km2: float
    source_crs: str
    features: int


@dataclass(frozen=True)
class DeclaredArea:
    """A city's declared area in a round."""

    city: str
    kind: str
    name: str
    area_km2: float
    source_crs: str
    features: int
    evidence_sha256: str
    filename: str
    reason: str
    declared_by: str
    declared_at: datetime
    geojson: str  # lon/lat

    def summary(self) -> dict[str, Any]:
        """What is shown wherever a value computed over the area appears (no geometry)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "area_km2": self.area_km2,
            "file": self.filename,
            "sha256": self.evidence_sha256,
            "source_crs": self.source_crs,
            "features": self.features,
            "reason": self.reason,
            "declared_by": self.declared_by,
            "declared_at": self.declared_at.isoformat(),
        }

    def label(self) -> str:
        """One line for a value's source: name, kind, size, file and its SHA-256."""
        what = KINDS[self.kind][1]
        named = f"{self.name} ({what})" if self.name else what
        return (
            f"{named}, {self.area_km2:,.2f} km², declared by {self.declared_by} from "
            f"{self.filename} (SHA-256 {self.evidence_sha256[:12]}…)"
        )


def _crs_of(content: bytes, filename: str, declared: str | None, given: str | None) -> CRS:
    """The file's CRS: the one it declares, else the one given, else WGS 84 (GeoJSON's own)."""
    geojson = filename.lower().endswith((".geojson", ".json"))
    if geojson and b'"crs"' not in content:
        declared = None  # GDAL reports EPSG:4326 for every GeoJSON without a "crs" member
    try:
        crs_given = CRS.from_user_input(given) if given else None
        crs_declared = CRS.from_user_input(declared) if declared else None
    except CRSError as exc:
        raise InvalidInput(f"{filename}: unknown CRS ({exc})") from None
    if crs_given and crs_declared and not crs_given.equals(crs_declared, ignore_axis_order=True):
        raise InvalidInput(
            f"{filename} declares {crs_label(crs_declared)}, but {crs_label(crs_given)} was given; "
            "give no CRS for a file that names its own"
        )
    return crs_given or crs_declared or CRS.from_epsg(4326)


def _polygons(filename: str, wkbs: Any) -> list[Polygon]:
    polys: list[Polygon] = []
    for n, wkb in enumerate(wkbs, start=1):
        if wkb is None:
            raise InvalidInput(f"{filename}, feature {n}: has no geometry")
        geom = shapely.force_2d(shapely.from_wkb(wkb))  # an area has no heights (KML, PolygonZ)
        if geom.is_empty:
            raise InvalidInput(f"{filename}, feature {n}: the geometry is empty")
        if not isinstance(geom, (Polygon, MultiPolygon)):
            raise InvalidInput(
                f"{filename}, feature {n}: a {geom.geom_type}, not a polygon; an area is made of "
                "polygons"
            )
        if not geom.is_valid:
            raise InvalidInput(
                f"{filename}, feature {n}: not a valid polygon ({explain_validity(geom)})"
            )
        polys.extend(geom.geoms if isinstance(geom, MultiPolygon) else [geom])
    if not polys:
        raise InvalidInput(f"{filename}: holds no features")
    return polys


def read_boundary(content: bytes, filename: str, crs: str | None = None) -> Boundary:
    """Read a boundary file's polygons into one multipolygon in lon/lat.

    Raises:
        InvalidInput: unreadable, not polygons, invalid rings, an unknown CRS or coordinates
        outside its area of use, or an implausible size; naming the file and the feature.
    """
    try:
        with warnings.catch_warnings():  # e.g. "GPKG application_id, but non conformant file
            warnings.simplefilter("ignore")  # extension" (it has no file name); several layers
            # are refused below
            layers = pyogrio.list_layers(io.BytesIO(content))
            meta, _, wkbs, _ = pyogrio.raw.read(io.BytesIO(content))
    except Exception as exc:  # GDAL's errors come in many classes; each one means unreadable
        why = str(exc).splitlines()[0].split(";")[0] if str(exc) else type(exc).__name__
        why = re.sub(r"'?/vsimem/[^\s']*'? ?", "", why)  # GDAL names its in-memory copy
        raise InvalidInput(
            f"{filename}: not a readable vector file (GeoJSON, GeoPackage, KML or a zipped "
            f"Shapefile): {why}"
        ) from None
    if len(layers) > 1:
        names = ", ".join(str(name) for name, _ in layers)
        raise InvalidInput(
            f"{filename} holds {len(layers)} layers ({names}); an area file holds one: export "
            "the boundary layer alone"
        )
    source = _crs_of(content, filename, meta.get("crs"), crs)
    polys = _polygons(filename, wkbs)
    to_lonlat = Transformer.from_crs(source, 4326, always_xy=True)
    lonlat = [shapely.transform(p, lambda xy: _forward(to_lonlat, xy)) for p in polys]
    w, s, e, n = MultiPolygon(lonlat).bounds
    x0, y0 = polys[0].exterior.coords[0]
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise InvalidInput(
            f"{filename}: its coordinates (e.g. {x0:.6g}, {y0:.6g}) are not positions in "
            f"{crs_label(source)}; if the file is in another CRS (a projected one, such as "
            "CGCS2000 / 3-degree Gauss-Kruger, EPSG:4527-4554), name it"
        )
    use = source.area_of_use
    margin = 1.0  # degrees: areas of use are drawn tight
    if use and (
        w < use.west - margin
        or e > use.east + margin
        or s < use.south - margin
        or n > use.north + margin
    ):
        raise InvalidInput(
            f"{filename}: the area ({w:.4f}, {s:.4f}) to ({e:.4f}, {n:.4f}) in lon/lat lies "
            f"outside the area of use of {crs_label(source)} ({use.name}); is it the right CRS?"
        )
    # districts that touch or overlap merge into one area, counted once
    merged = shapely.union_all(lonlat)
    geom = merged if isinstance(merged, MultiPolygon) else MultiPolygon([merged])
    area_km2 = sum(abs(_WGS84.geometry_area_perimeter(orient(p))[0]) for p in geom.geoms) / 1e6
    if area_km2 < MIN_KM2:
        raise InvalidInput(
            f"{filename}: the area is {area_km2 * 1e6:,.0f} m², smaller than any city "
            f"(at least {MIN_KM2:g} km²); is it the right file, and the right CRS?"
        )
    if area_km2 > MAX_KM2:
        raise InvalidInput(
            f"{filename}: the area is {area_km2:,.0f} km², larger than any city "
            f"(limit {MAX_KM2:,.0f}); is it the right file, and the right CRS?"
        )
    return Boundary(shapely.normalize(geom), round(area_km2, 4), crs_label(source), len(wkbs))


def _forward(t: Transformer, xy: Any) -> Any:
    import numpy as np

    x, y = t.transform(xy[:, 0], xy[:, 1], errcheck=False)
    return np.column_stack((x, y))


def declare_area(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    file: EvidenceFile,
    kind: str,
    reason: str,
    crs: str | None = None,
    name: str = "",
) -> DeclaredArea:
    """Declare (or replace) the area a city's area-based indicators are computed over; the file
    is kept as evidence. Audited with the old and new area's summary.

    Raises:
        Forbidden: below admin (the committee supplies areas). Conflict: not a draft.
        NotFound: no such city in the round. InvalidInput: a bad file, kind or no reason.
    """
    require(actor, "admin")
    require_round(actor, round_id)
    if kind not in KINDS:
        raise InvalidInput(f"an area is {' or '.join(KINDS)}, not {kind!r}")
    if not reason.strip():
        raise InvalidInput("declaring an area needs its reason (it goes into the audit log)")
    with engine.begin() as conn:
        require_draft(round_row(conn, round_id, lock=True), "its areas")
        require_city(conn, round_id, city)
        boundary = read_boundary(file.content, file.filename, crs)
        old = get_area(conn, round_id, city)
        sha = store_evidence(conn, actor, round_id, file)
        conn.execute(
            text(
                "INSERT INTO grading_area (round_id, city_code, kind, name, geom, area_km2, "
                "source_crs, features, evidence_sha256, reason, declared_by) VALUES (:r, :c, "
                ":kind, :name, ST_GeomFromWKB(:wkb, 4326), :km2, :crs, :features, :sha, "
                ":reason, :by) ON CONFLICT (round_id, city_code) DO UPDATE SET "
                "kind = EXCLUDED.kind, name = EXCLUDED.name, geom = EXCLUDED.geom, "
                "area_km2 = EXCLUDED.area_km2, source_crs = EXCLUDED.source_crs, "
                "features = EXCLUDED.features, evidence_sha256 = EXCLUDED.evidence_sha256, "
                "reason = EXCLUDED.reason, declared_by = EXCLUDED.declared_by, "
                "declared_at = now()"
            ),
            {
                "r": round_id,
                "c": city,
                "kind": kind,
                "name": name.strip(),
                "wkb": shapely.to_wkb(boundary.geom),
                "km2": boundary.area_km2,
                "crs": boundary.source_crs,
                "features": boundary.features,
                "sha": sha,
                "reason": reason.strip(),
                "by": actor.name,
            },
        )
        new = get_area(conn, round_id, city)
        assert new is not None
        audit(
            conn,
            actor,
            "area.declare",
            round_id,
            city,
            old.summary() if old else None,
            new.summary(),
        )
    return new


_AREA = """SELECT a.city_code, a.kind, a.name, a.area_km2, a.source_crs, a.features,
       a.evidence_sha256, e.filename, a.reason, a.declared_by, a.declared_at,
       ST_AsGeoJSON(a.geom) AS geojson
  FROM grading_area a
  JOIN grading_evidence e ON e.round_id = a.round_id AND e.sha256 = a.evidence_sha256
 WHERE a.round_id = :r"""


def _declared(row: Any) -> DeclaredArea:
    return DeclaredArea(
        city=row.city_code,
        kind=row.kind,
        name=row.name,
        area_km2=row.area_km2,
        source_crs=row.source_crs,
        features=row.features,
        evidence_sha256=row.evidence_sha256,
        filename=row.filename,
        reason=row.reason,
        declared_by=row.declared_by,
        declared_at=row.declared_at,
        geojson=row.geojson,
    )


def get_area(conn: Connection, round_id: str, city: str) -> DeclaredArea | None:
    """A city's declared area in a round, if any."""
    row = conn.execute(text(_AREA + " AND a.city_code = :c"), {"r": round_id, "c": city}).first()
    return _declared(row) if row else None


def list_areas(engine: Engine, round_id: str) -> list[DeclaredArea]:
    """Every declared area of a round, by city.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        round_row(conn, round_id)
        rows = conn.execute(text(_AREA + " ORDER BY a.city_code"), {"r": round_id}).all()
    return [_declared(r) for r in rows]


def area_of(engine: Engine, round_id: str, city: str) -> DeclaredArea:
    """A city's declared area.

    Raises:
        NotFound: no such round, or the city has no declared area.
    """
    with engine.connect() as conn:
        round_row(conn, round_id)
        area = get_area(conn, round_id, city)
    if area is None:
        raise NotFound(f"city {city!r} has no declared area in round {round_id!r}")
    return area
