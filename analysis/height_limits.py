"""Height limits (控高): every building above the limit of the ground it stands on, and by how
much.

The limits are the city's parcels' own (`height_limit`, metres above the ground), or one limit
given with the request: a polygon (GeoJSON, longitude and latitude) and a height. A height is
measured from the ground (`reference: ground`: the building's height, its highest point less its
lowest) or is an elevation on the WGS 84 ellipsoid (`reference: ellipsoid`: the building's
highest point, as CIM stores heights). A building across a limit line is checked against each
limit it stands in.
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)
from __future__ import annotations

import math
from typing import Any

import orjson
from sqlalchemy import Connection, text

from analysis.model import BUILDINGS, FLOOR_BINDS, PARCELS, scenario_input, scheme_city
from cim.errors import InvalidInput, NotFound

REFERENCES = ("ground", "ellipsoid")
MAX_VERTICES = 100_000  # of a limit polygon given with a request

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


def _polygon(given: Any) -> dict[str, Any]:
    """A GeoJSON Polygon or MultiPolygon in longitude and latitude, checked."""
    if isinstance(given, dict) and given.get("type") == "Feature":
        given = given.get("geometry")
    if not isinstance(given, dict) or given.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("input 'polygon' is a GeoJSON Polygon or MultiPolygon (CRS84)")
    coords = given.get("coordinates")
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == 0:
            flat.append(node)
            return
        if not isinstance(node, list):
            raise InvalidInput("input 'polygon': its coordinates are not nested lists")
        for child in node:
            walk(child, depth - 1)

    walk(coords, 2 if given["type"] == "Polygon" else 3)
    if not flat or len(flat) > MAX_VERTICES:
        raise InvalidInput(f"input 'polygon' has {len(flat)} positions (1 to {MAX_VERTICES:,})")
    for pos in flat:
        if (
            not isinstance(pos, list)
            or len(pos) < 2
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in pos[:2])
            or not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90)
        ):
            raise InvalidInput(
                f"input 'polygon': position {pos!r} is not a longitude and latitude (CRS84)"
            )
    return {"type": given["type"], "coordinates": coords}


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the analysis reads them, with their defaults; raises InvalidInput."""
    unknown = set(inputs) - {"city", "parcels", "polygon", "height", "reference", "scenario"}
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
    parcels = inputs.get("parcels")
    if parcels is not None:
        if polygon is not None:
            raise InvalidInput("give either 'parcels' or a 'polygon' and 'height', not both")
        if not isinstance(parcels, list) or not all(isinstance(p, str | int) for p in parcels):
            raise InvalidInput("input 'parcels' is a list of parcel codes or ids")
        parcels = [str(p) for p in parcels]
    if reference == "ellipsoid" and polygon is None:
        raise InvalidInput("parcels' height limits are above the ground: reference 'ground'")
    return {
        "city": city,
        "scenario": scenario_input(inputs.get("scenario")),
        "parcels": parcels,
        "polygon": None if polygon is None else _polygon(polygon),
        "height": None if height is None else float(height),
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
    if q["polygon"] is not None:
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
        ),
        "limits": limits,
        "buildings_checked": len(checked),
        "breaches": breaches,
        "summary": {
            "buildings_breaching": len({b["building"] for b in breaches}),
            "max_over_by_m": breaches[0]["over_by_m"] if breaches else None,
        },
    }
