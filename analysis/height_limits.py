"""Height limits (控高): every building above the limit of the ground it stands on, and by how
much.

The limits are the city's parcels' own (`height_limit`, metres above the ground), or given with
the request: a polygon (GeoJSON, longitude and latitude) and a height, or a limit surface (a
clearance surface, 净空面: GeoJSON whose positions carry their limit as a third number, each
polygon a plane, a TIN as triangles), whose limit over a building is the surface's lowest over
the building's footprint (a plane's lowest over a polygon is at one of its corners, so the
corners of the footprint's part in each plane are all that need be read). A height is
measured from the ground (`reference: ground`: the building's height, its highest point less its
lowest) or is an elevation on the WGS 84 ellipsoid (`reference: ellipsoid`: the building's
highest point, as CIM stores heights). A building across a limit line is checked against each
limit it stands in.
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)
from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, text

from analysis.model import BUILDINGS, FLOOR_BINDS, PARCELS, scenario_input, scheme_city
from cim.errors import InvalidInput, NotFound

REFERENCES = ("ground", "ellipsoid")
MAX_VERTICES = 100_000  # of a limit polygon or surface given with a request
PLANAR_M = 0.05  # how far a surface's position may lie off its polygon's plane
METRES_PER_DEGREE = 111_320.0

SQL_PARCELS = f"""
WITH parcels AS ({PARCELS}), buildings AS ({BUILDINGS})
SELECT p.id AS parcel, p.code, p.height_limit AS limit_m, b.source_id, b.type,
       b.z_max - b.z_min AS height, b.z_max AS top
FROM parcels p JOIN buildings b ON b.bbox && p.geom AND ST_Intersects(b.footprint, p.geom)
WHERE p.height_limit IS NOT NULL
ORDER BY b.source_id, p.id
"""

SQL_POLYGON = f"""
WITH area AS (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:polygon), 4326) AS geom),
     buildings AS ({BUILDINGS})
SELECT NULL AS parcel, NULL AS code, CAST(:limit AS float8) AS limit_m, b.source_id, b.type,
       b.z_max - b.z_min AS height, b.z_max AS top
FROM area a JOIN buildings b ON b.bbox && a.geom AND ST_Intersects(b.footprint, a.geom)
ORDER BY b.source_id
"""

# the limit over each building is the lowest of each plane at the corners of the part of its
# footprint in that plane's polygon
SQL_SURFACE = f"""
WITH facets AS (
       SELECT ST_SetSRID(ST_GeomFromGeoJSON(f.polygon), 4326) AS geom, f.a, f.b, f.c
       FROM unnest(CAST(:polygons AS text[]), CAST(:a AS float8[]), CAST(:b AS float8[]),
                   CAST(:c AS float8[])) AS f (polygon, a, b, c)),
     buildings AS ({BUILDINGS})
SELECT NULL AS parcel, NULL AS code, min(f.a * ST_X(p.geom) + f.b * ST_Y(p.geom) + f.c) AS limit_m,
       b.source_id, b.type, b.z_max - b.z_min AS height, b.z_max AS top
FROM facets f JOIN buildings b ON b.bbox && f.geom AND ST_Intersects(b.footprint, f.geom)
CROSS JOIN LATERAL ST_DumpPoints(ST_Intersection(b.footprint, f.geom)) p
GROUP BY b.source_id, b.type, b.z_max, b.z_min
ORDER BY b.source_id
"""


def _polygon(given: Any, name: str = "polygon", heights: bool = False) -> dict[str, Any]:
    """A GeoJSON Polygon or MultiPolygon in longitude and latitude (with a finite third number
    at every position when `heights`), checked."""
    if isinstance(given, dict) and given.get("type") == "Feature":
        given = given.get("geometry")
    if not isinstance(given, dict) or given.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"input {name!r} is a GeoJSON Polygon or MultiPolygon (CRS84)")
    coords = given.get("coordinates")
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == 0:
            flat.append(node)
            return
        if not isinstance(node, list):
            raise InvalidInput(f"input {name!r}: its coordinates are not nested lists")
        for child in node:
            walk(child, depth - 1)

    walk(coords, 2 if given["type"] == "Polygon" else 3)
    if not flat or len(flat) > MAX_VERTICES:
        raise InvalidInput(f"input {name!r} has {len(flat)} positions (1 to {MAX_VERTICES:,})")
    dims = 3 if heights else 2
    for pos in flat:
        if (
            not isinstance(pos, list)
            or len(pos) < dims
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in pos[:dims]
            )
            or not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90)
        ):
            what = "longitude, latitude and limit (m)" if heights else "longitude and latitude"
            raise InvalidInput(f"input {name!r}: position {pos!r} is not a {what} (CRS84)")
    return {"type": given["type"], "coordinates": coords}


def _planes(surface: dict[str, Any], low: float) -> list[tuple[str, float, float, float]]:
    """Each polygon of a limit surface as its plan (GeoJSON) and its plane, limit = a x lon +
    b x lat + c; raises InvalidInput for a polygon whose positions are not on one plane, or a
    limit that cannot be right."""
    polygons = [surface["coordinates"]] if surface["type"] == "Polygon" else surface["coordinates"]
    out = []
    for n, rings in enumerate(polygons, 1):
        xyz = np.array([p[:3] for ring in rings for p in ring], dtype=np.float64)
        if len(xyz) < 3:
            raise InvalidInput(f"input 'surface': polygon {n} has fewer than 3 positions")
        bad = xyz[(xyz[:, 2] <= low) | (xyz[:, 2] > 9000)]
        if len(bad):
            raise InvalidInput(
                f"input 'surface': polygon {n} has a limit of {bad[0, 2]:g} m, which cannot be "
                f"right ({low:g} to 9000)"
            )
        lon0, lat0 = xyz[:, 0].mean(), xyz[:, 1].mean()
        east = math.cos(math.radians(lat0)) * METRES_PER_DEGREE
        x, y = (xyz[:, 0] - lon0) * east, (xyz[:, 1] - lat0) * METRES_PER_DEGREE
        design = np.column_stack((x, y, np.ones(len(x))))
        (ax, by, c0), *_ = np.linalg.lstsq(design, xyz[:, 2], rcond=None)
        off = float(np.abs(design @ np.array([ax, by, c0]) - xyz[:, 2]).max())
        span = float(np.ptp(x) + np.ptp(y))
        if off > PLANAR_M or span < 0.01:
            raise InvalidInput(
                f"input 'surface': polygon {n} is not a plane (its positions lie up to "
                f"{off:.2f} m off the plane that fits them best): give it as triangles"
                if span >= 0.01
                else f"input 'surface': polygon {n} has no area"
            )
        a, b = ax * east, by * METRES_PER_DEGREE
        c = c0 - a * lon0 - b * lat0
        plan = {"type": "Polygon", "coordinates": [[p[:2] for p in ring] for ring in rings]}
        out.append((orjson.dumps(plan).decode(), float(a), float(b), float(c)))
    return out


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the analysis reads them, with their defaults; raises InvalidInput."""
    known = {"city", "parcels", "polygon", "height", "surface", "reference", "scenario"}
    unknown = set(inputs) - known
    if unknown:
        raise InvalidInput(f"unknown inputs: {', '.join(sorted(unknown))}")
    city = inputs.get("city")
    if not isinstance(city, str) or not city:
        raise InvalidInput("input 'city' (a city code) is required")
    reference = inputs.get("reference", "ground")
    if reference not in REFERENCES:
        raise InvalidInput(f"input 'reference' is one of {', '.join(REFERENCES)}")
    polygon, height = inputs.get("polygon"), inputs.get("height")
    if (polygon is None) != (height is None):
        raise InvalidInput("a limit given with the request needs both 'polygon' and 'height'")
    if height is not None:
        if isinstance(height, bool) or not isinstance(height, int | float):
            raise InvalidInput(f"input 'height' {height!r} is not a number of metres")
        low = -500.0 if reference == "ellipsoid" else 0.0
        if not math.isfinite(height) or not low < height <= 9000:
            raise InvalidInput(f"input 'height' {height!r} m cannot be right ({low:g} to 9000)")
    surface = inputs.get("surface")
    if surface is not None and polygon is not None:
        raise InvalidInput("give either a 'surface' or a 'polygon' and 'height', not both")
    parcels = inputs.get("parcels")
    if parcels is not None:
        if polygon is not None or surface is not None:
            raise InvalidInput("give either 'parcels' or a limit with the request, not both")
        if not isinstance(parcels, list) or not all(isinstance(p, str | int) for p in parcels):
            raise InvalidInput("input 'parcels' is a list of parcel codes or ids")
        parcels = [str(p) for p in parcels]
    if reference == "ellipsoid" and polygon is None and surface is None:
        raise InvalidInput("parcels' height limits are above the ground: reference 'ground'")
    if surface is not None:
        surface = _polygon(surface, "surface", heights=True)
        _planes(surface, -500.0 if reference == "ellipsoid" else 0.0)  # each polygon a plane
    return {
        "city": city,
        "scenario": scenario_input(inputs.get("scenario")),
        "parcels": parcels,
        "polygon": None if polygon is None else _polygon(polygon),
        "height": None if height is None else float(height),
        "surface": surface,
        "reference": reference,
    }


def verify(conn: Connection, q: dict[str, Any]) -> list[Any]:
    """The parcels with a height limit the checked inputs `q` name (all the city's when none;
    no need of any when the limit is given with the request).

    Raises:
        NotFound: no such city, no parcels with a height limit, or not those named.
    """
    city = q["city"]
    scheme_city(conn, city, q["scenario"])  # the city, and its scenario when one is named
    if q["polygon"] is not None or q.get("surface") is not None:
        return []
    limited = conn.execute(
        text(f"SELECT id, code FROM ({PARCELS}) x WHERE height_limit IS NOT NULL"),
        {"city": city, "parcels": q["parcels"]},
    ).all()
    if not limited:
        raise NotFound(
            f"city {city!r} has no parcels with a height limit"
            + (f" among {', '.join(q['parcels'])}" if q["parcels"] else "")
            + ": ingest a planning layer with one, or give a 'polygon' and 'height'"
        )
    if q["parcels"]:
        found = {str(i) for i, _ in limited} | {c for _, c in limited if c}
        missing = [p for p in q["parcels"] if p not in found]
        if missing:
            raise NotFound(f"no parcel with a height limit {', '.join(missing)} in city {city!r}")
    return list(limited)


def compute(conn: Connection, inputs: dict[str, Any]) -> dict[str, Any]:
    """Buildings above their limits.

    Raises:
        NotFound: the city does not exist, or has no parcels with a height limit (when the
            limit is not given with the request), or none of those named.
    """
    q = check_inputs(inputs)
    city = q["city"]
    scheme = scheme_city(conn, city, q["scenario"])
    binds = {"city": city, "scheme": scheme, "parcels": q["parcels"], **FLOOR_BINDS}
    limited = verify(conn, q)
    if q["polygon"] is not None:
        rows = (
            conn.execute(
                text(SQL_POLYGON),
                {**binds, "polygon": orjson.dumps(q["polygon"]).decode(), "limit": q["height"]},
            )
            .mappings()
            .all()
        )
        limits = 1
    elif q.get("surface") is not None:
        planes = _planes(q["surface"], -500.0 if q["reference"] == "ellipsoid" else 0.0)
        polygons, a, b, c = (list(column) for column in zip(*planes, strict=True))
        columns = {"polygons": polygons, "a": a, "b": b, "c": c}
        rows = conn.execute(text(SQL_SURFACE), {**binds, **columns}).mappings().all()
        limits = len(planes)
    else:
        rows = conn.execute(text(SQL_PARCELS), binds).mappings().all()
        limits = len(limited)
    ground = q["reference"] == "ground"
    breaches = []
    checked: set[str] = set()
    for r in rows:
        checked.add(r["source_id"])
        measured = float(r["height"] if ground else r["top"])
        over = measured - float(r["limit_m"])
        if over > 1e-6:
            breaches.append(
                {
                    "building": r["source_id"],
                    "type": r["type"],
                    "parcel": r["parcel"],
                    "parcel_code": r["code"],
                    "height_m": measured,
                    "limit_m": float(r["limit_m"]),
                    "over_by_m": over,
                }
            )
    breaches.sort(key=lambda b: (-b["over_by_m"], b["building"]))
    return {
        "city": city,
        "scenario": q["scenario"],
        "reference": q["reference"],
        "rule": (
            "a building breaches a limit when its "
            + ("height (highest point less lowest)" if ground else "highest point (ellipsoidal)")
            + " is above the limit of any area it stands in, even in part"
            + (
                "; a surface's limit over a building is its lowest over the building's footprint"
                if q.get("surface") is not None
                else ""
            )
        ),
        "limits": limits,
        "buildings_checked": len(checked),
        "breaches": breaches,
        "summary": {
            "buildings_breaching": len({b["building"] for b in breaches}),
            "max_over_by_m": breaches[0]["over_by_m"] if breaches else None,
        },
    }
