"""Parcel indicators (指标核算): per planning parcel, the floor area built on it, its floor-area
ratio (容积率), building density (建筑密度), and the highest and mean height of its buildings,
each against the parcel's limits.

A building across a parcel line counts by its part inside: its footprint is cut by the parcel,
and the part's area (on the ellipsoid) is its ground cover there; its floor area there is that
part times its floors (see `analysis.model.floors`). FAR = floor area / parcel area; density =
ground cover / parcel area. Heights are those of the buildings that stand in the parcel, whole.
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from analysis.model import (
    BUILDINGS,
    FLOOR_ATTRIBUTES,
    FLOOR_BINDS,
    PARCELS,
    floors,
    scenario_input,
    scheme_city,
    storey_height,
)
from cim.errors import InvalidInput, NotFound

DEFAULT_STOREY_M = 3.0

SQL = f"""
WITH parcels AS ({PARCELS}), buildings AS ({BUILDINGS})
SELECT p.id AS parcel, b.source_id, b.z_max - b.z_min AS height, b.floors_text, b.floors_key,
       ST_Area(CAST(ST_Intersection(b.footprint, p.geom) AS geography)) AS inside
FROM parcels p JOIN buildings b ON b.bbox && p.geom AND ST_Intersects(b.footprint, p.geom)
ORDER BY p.id, b.source_id
"""


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the analysis reads them, with their defaults; raises InvalidInput."""
    unknown = set(inputs) - {"city", "parcels", "storey_height", "scenario"}
    if unknown:
        raise InvalidInput(f"unknown inputs: {', '.join(sorted(unknown))}")
    city = inputs.get("city")
    if not isinstance(city, str) or not city:
        raise InvalidInput("input 'city' (a city code) is required")
    parcels = inputs.get("parcels")
    if parcels is not None:
        if not isinstance(parcels, list) or not all(isinstance(p, str | int) for p in parcels):
            raise InvalidInput("input 'parcels' is a list of parcel codes or ids")
        parcels = [str(p) for p in parcels]
    storey = storey_height(inputs.get("storey_height", DEFAULT_STOREY_M))
    scenario = scenario_input(inputs.get("scenario"))
    return {"city": city, "scenario": scenario, "parcels": parcels, "storey_height": storey}


def _rule(storey: float) -> dict[str, str]:
    return {
        "floor_area": (
            "each building's part inside the parcel (its footprint cut by the parcel line, "
            "area on the WGS 84 ellipsoid) times its floors above the ground; floors from the "
            f"first of its attributes {', '.join(FLOOR_ATTRIBUTES)} that holds a whole number, "
            f"else its height / {storey:g} m rounded to the nearest whole number, at least 1"
        ),
        "far": "floor area / parcel area",
        "density": "ground cover of the buildings' parts inside / parcel area x 100 %",
        "height": (
            "a building's height is its geometry's highest point less its lowest (metres); "
            "max and mean over the buildings that stand in the parcel"
        ),
        "buildings": (
            "objects of type Building without BuildingParts, and BuildingParts (a building "
            "drawn as parts counts once, by its parts)"
        ),
    }


def _check(value: float | None, limit: float | None) -> str | None:
    if limit is None or value is None:
        return None
    return "exceeds" if value > limit + 1e-9 else "within"


def verify(conn: Connection, q: dict[str, Any]) -> list[Any]:
    """The parcels the checked inputs `q` name (all the city's when none).

    Raises:
        NotFound: no such city, the city has no parcels, or not those named.
    """
    city = q["city"]
    scheme_city(conn, city, q["scenario"])  # the city, and its scenario when one is named
    parcels = (
        conn.execute(
            text(
                "SELECT id, code, land_use, height_limit, far_limit, density_limit, green_ratio, "
                f"area, source_id FROM ({PARCELS}) x ORDER BY id"
            ),
            {"city": city, "parcels": q["parcels"]},
        )
        .mappings()
        .all()
    )
    if not parcels:
        which = f" named {', '.join(q['parcels'])}" if q["parcels"] else ""
        raise NotFound(
            f"city {city!r} has no parcels{which}: ingest a planning layer first "
            "(cim ingest parcels.gpkg --city CODE --as parcels)"
        )
    if q["parcels"]:
        found = {str(p["id"]) for p in parcels} | {p["code"] for p in parcels if p["code"]}
        missing = [p for p in q["parcels"] if p not in found]
        if missing:
            raise NotFound(f"no parcel {', '.join(missing)} in city {city!r}")
    return list(parcels)


def compute(conn: Connection, inputs: dict[str, Any]) -> dict[str, Any]:
    """The indicators of a city's parcels (all, or those `inputs['parcels']` names).

    Raises:
        NotFound: the city has no parcels (or none of those named).
    """
    q = check_inputs(inputs)
    storey = q["storey_height"]
    scheme = scheme_city(conn, q["city"], q["scenario"])
    binds = {"city": q["city"], "scheme": scheme, "parcels": q["parcels"], **FLOOR_BINDS}
    parcels = verify(conn, q)
    by_parcel: dict[int, list[dict[str, Any]]] = {int(p["id"]): [] for p in parcels}
    for row in conn.execute(text(SQL), binds).mappings():
        by_parcel[int(row["parcel"])].append(dict(row))
    out = []
    for p in parcels:
        rows = by_parcel[int(p["id"])]
        cover = floor_area = 0.0
        heights: list[float] = []
        from_height = 0
        for r in rows:
            n, source = floors(r["floors_text"], float(r["height"]), storey)
            from_height += source == "height"
            cover += float(r["inside"])
            floor_area += float(r["inside"]) * n
            heights.append(float(r["height"]))
        area = float(p["area"])
        far = floor_area / area if area > 0 else None
        density = cover / area * 100.0 if area > 0 else None
        highest = max(heights) if heights else None
        out.append(
            {
                "parcel": int(p["id"]),
                "code": p["code"],
                "source_id": p["source_id"],
                "land_use": p["land_use"],
                "area_m2": area,
                "buildings": len(rows),
                "floors_from_height": from_height,
                "ground_cover_m2": cover,
                "floor_area_m2": floor_area,
                "far": far,
                "density_percent": density,
                "max_height_m": highest,
                "mean_height_m": sum(heights) / len(heights) if heights else None,
                "limits": {
                    "far": p["far_limit"],
                    "density_percent": p["density_limit"],
                    "height_m": p["height_limit"],
                    "green_ratio_percent": p["green_ratio"],
                },
                "checks": {
                    "far": _check(far, p["far_limit"]),
                    "density": _check(density, p["density_limit"]),
                    "height": _check(highest, p["height_limit"]),
                },
            }
        )
    failing = sum(1 for r in out if "exceeds" in r["checks"].values())
    return {
        "city": q["city"],
        "scenario": q["scenario"],
        "rule": _rule(storey),
        "storey_height_m": storey,
        "parcels": out,
        "summary": {"parcels": len(out), "exceeding_a_limit": failing},
    }
