"""Comparing design schemes (方案比选): for the baseline and each scheme, the indicators of the
parcels the schemes build on, the height-limit breaches there, and the windows around that
lose sunlight compared with the baseline.

The parcels are those any scheme's objects stand on (or those named). The windows are those of
the baseline's buildings within `NEAR_M` of any scheme's objects and not replaced by one (the
neighbours whose light a scheme can take; at most `MAX_NEIGHBOURS`, nearest first), or of the
buildings named; each is checked on the same points in every scenario, so that a point's
minutes can be compared one to one.
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from analysis import height_limits, indicators, sunlight
from analysis.model import scenario_input, scheme_city
from cim.errors import InvalidInput, NotFound

NEAR_M = 100.0
MAX_NEIGHBOURS = 30
MAX_SCENARIOS = 8
BASELINE = "baseline"
SUNLIGHT_OPTIONS = {
    "date", "year", "window", "step_minutes", "climate_zone", "large_city", "min_hours",
    "accumulate", "min_spell_minutes", "sill_height", "spacing", "storey_height",
}  # fmt: skip

_TOUCHED = """
SELECT DISTINCT coalesce(p.code, CAST(p.id AS text))
FROM planning_parcel p JOIN city_object s
  ON s.city_code = ANY (CAST(:schemes AS text[])) AND s.bbox && p.geom
 AND ST_Intersects(s.footprint, p.geom)
WHERE p.city_code = :city
"""

_NEIGHBOURS = """
WITH scheme AS (
    SELECT ST_Collect(s.footprint) AS geom FROM city_object s
    WHERE s.city_code = ANY (CAST(:schemes AS text[])) AND s.footprint IS NOT NULL)
SELECT o.source_id
FROM city_object o, scheme
WHERE o.city_code = :city AND o.type = 'Building' AND o.footprint IS NOT NULL
  AND o.bbox && ST_Expand(scheme.geom, :degrees)
  AND NOT EXISTS (SELECT 1 FROM city_object s WHERE s.city_code = ANY (CAST(:schemes AS text[]))
                  AND s.source_id = o.source_id)
  AND ST_DWithin(CAST(o.footprint AS geography), CAST(scheme.geom AS geography), :near)
ORDER BY ST_Distance(CAST(o.footprint AS geography), CAST(scheme.geom AS geography)),
         o.source_id
LIMIT :most
"""


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the comparison reads them; raises InvalidInput."""
    unknown = set(inputs) - {"city", "scenarios", "parcels", "buildings", "sunlight"}
    if unknown:
        raise InvalidInput(f"unknown inputs: {', '.join(sorted(unknown))}")
    city = inputs.get("city")
    if not isinstance(city, str) or not city:
        raise InvalidInput("input 'city' (a city code) is required")
    given = inputs.get("scenarios")
    if not isinstance(given, list) or not 1 <= len(given) <= MAX_SCENARIOS:
        raise InvalidInput(f"input 'scenarios' names 1 to {MAX_SCENARIOS} design schemes")
    scenarios = [scenario_input(s) for s in given]
    if None in scenarios or len(set(scenarios)) != len(scenarios):
        raise InvalidInput("input 'scenarios' names each scheme once (the baseline is always in)")
    for key in ("parcels", "buildings"):
        value = inputs.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise InvalidInput(f"input {key!r} is a list of ids")
    options = inputs.get("sunlight", {})
    if not isinstance(options, dict) or set(options) - SUNLIGHT_OPTIONS:
        raise InvalidInput(
            "input 'sunlight' holds the sunlight analysis's options: "
            + ", ".join(sorted(SUNLIGHT_OPTIONS))
        )
    return {
        "city": city,
        "scenarios": scenarios,
        "parcels": inputs.get("parcels"),
        "buildings": inputs.get("buildings"),
        "sunlight": options,
    }


def verify(conn: Connection, q: dict[str, Any]) -> list[str]:
    """The schemes' cities.

    Raises:
        NotFound: no such city or scheme.
    """
    return [str(scheme_city(conn, q["city"], s)) for s in q["scenarios"]]


def _key(p: dict[str, Any]) -> tuple[Any, ...]:
    return (p["building"], p["facade"], p["floor"], p["index"])


def compute(conn: Connection, inputs: dict[str, Any]) -> dict[str, Any]:
    """The comparison of the baseline and the schemes."""
    q = check_inputs(inputs)
    city = q["city"]
    schemes = verify(conn, q)
    parcels = q["parcels"] or sorted(
        conn.execute(text(_TOUCHED), {"city": city, "schemes": schemes}).scalars().all()
    )
    buildings = q["buildings"] or list(
        conn.execute(
            text(_NEIGHBOURS),
            {"city": city, "schemes": schemes, "near": NEAR_M, "degrees": NEAR_M / 80_000.0,
             "most": MAX_NEIGHBOURS},
        ).scalars().all()
    )  # fmt: skip
    names: list[str | None] = [None, *q["scenarios"]]
    out: dict[str, Any] = {
        "city": city,
        "scenarios": [BASELINE, *q["scenarios"]],
        "parcels": parcels,
        "neighbours": buildings,
        "rule": {
            "parcels": "the parcels any scheme's objects stand on, unless named",
            "neighbours": (
                f"the baseline's buildings within {NEAR_M:g} m of any scheme's objects and not "
                f"replaced by one, nearest first, at most {MAX_NEIGHBOURS}, unless named"
            ),
        },
        "indicators": {},
        "height_limits": {},
        "sunlight": {},
    }
    has_limits = bool(
        parcels
        and conn.execute(
            text(
                "SELECT 1 FROM planning_parcel WHERE city_code = :c AND height_limit IS NOT NULL"
                " AND (code = ANY (CAST(:p AS text[]))"
                " OR CAST(id AS text) = ANY (CAST(:p AS text[])))"
            ),
            {"c": city, "p": parcels},
        ).first()
    )
    baseline_points: dict[tuple[Any, ...], dict[str, Any]] = {}
    for name in names:
        label = name or BASELINE
        if parcels:
            found = indicators.compute(conn, {"city": city, "scenario": name, "parcels": parcels})
            out["indicators"][label] = {
                "summary": found["summary"],
                "parcels": [
                    {k: p[k] for k in ("code", "parcel", "buildings", "floor_area_m2", "far",
                                       "density_percent", "max_height_m", "checks", "limits")}
                    for p in found["parcels"]
                ],
            }  # fmt: skip
        if has_limits:
            breaches = height_limits.compute(
                conn, {"city": city, "scenario": name, "parcels": parcels}
            )
            out["height_limits"][label] = {
                "summary": breaches["summary"],
                "breaches": breaches["breaches"],
            }
        if buildings:
            lit = sunlight.compute(
                conn, {"city": city, "scenario": name, "buildings": buildings, **q["sunlight"]}
            )
            entry: dict[str, Any] = {"summary": lit["summary"], "rule": lit["rule"]["text"]}
            if name is None:
                baseline_points = {_key(p): p for p in lit["points"]}
            else:
                lost, less = [], 0
                for p in lit["points"]:
                    before = baseline_points.get(_key(p))
                    if before is None:
                        continue
                    if p["minutes"] < before["minutes"]:
                        less += 1
                    if before["passes"] and not p["passes"]:
                        lost.append(
                            {
                                **{k: p[k] for k in ("building", "facade", "facade_azimuth",
                                                     "floor", "index", "lon", "lat", "height")},
                                "minutes_before": before["minutes"],
                                "minutes_after": p["minutes"],
                                "intervals_after": p["intervals"],
                            }
                        )  # fmt: skip
                entry["windows_losing_sun"] = less
                entry["windows_newly_failing"] = lost
            out["sunlight"][label] = entry
    if not parcels and not buildings:
        raise NotFound(
            "the schemes stand on no parcel and near no building: name 'parcels' or 'buildings'"
        )
    return out
