"""What the analyses read of the city model: its buildings, as plan and height, and its parcels.

A building is an object of type Building without BuildingParts, or a BuildingPart (so that a
building drawn as parts is counted once, by its parts). Its height is that of its geometry
(highest point less lowest, ellipsoidal metres), its footprint the one stored at ingest. Its
floors are the first whole number of its floor attributes; else its height divided by the
storey height, rounded, at least one.
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)
from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, text

from cim.errors import InvalidInput, NotFound

# attribute names that give a building's storeys above the ground, most usual first
FLOOR_ATTRIBUTES = (
    "storeysAboveGround",
    "floors",
    "storeys",
    "building:levels",
    "levels",
    "NB_ETAGES",
    "FLOORS",
    "地上层数",
    "层数",
    "楼层数",
)

# the floor attributes' values and names, the first present
_FLOORS = ", ".join(f"o.attributes ->> :floor{k}" for k in range(len(FLOOR_ATTRIBUTES)))
_FLOOR_KEY = " ".join(
    f"WHEN o.attributes ->> :floor{k} IS NOT NULL THEN :floor{k}"
    for k in range(len(FLOOR_ATTRIBUTES))
)
FLOOR_BINDS = {f"floor{k}": name for k, name in enumerate(FLOOR_ATTRIBUTES)}

# the city's objects as a scenario sees them: the baseline's, less those its scheme replaces
# (same id), and the scheme's (:scheme is the scheme's city, `{city}~{scenario}`; NULL: the
# baseline alone)
OBJECTS = """
SELECT o.* FROM city_object o
WHERE o.city_code = :city
  AND (CAST(:scheme AS text) IS NULL OR NOT EXISTS (
       SELECT 1 FROM city_object s WHERE s.city_code = :scheme AND s.source_id = o.source_id))
UNION ALL
SELECT o.* FROM city_object o WHERE o.city_code = :scheme
"""

# objects counted as buildings, with the planar part the analysis reads
BUILDINGS = f"""
SELECT o.city_code, o.id, o.source_id, o.type, o.footprint, o.bbox, o.z_min, o.z_max,
       coalesce({_FLOORS}) AS floors_text, CASE {_FLOOR_KEY} END AS floors_key
FROM ({OBJECTS}) o
WHERE o.footprint IS NOT NULL AND o.z_max IS NOT NULL
  AND (o.type = 'BuildingPart'
       OR o.type = 'Building' AND NOT EXISTS (
           SELECT 1 FROM city_object c
           WHERE c.city_code = o.city_code AND c.source_id = ANY (o.children)
             AND c.type = 'BuildingPart'))
"""

PARCELS = """
SELECT p.id, p.code, p.land_use, p.height_limit, p.far_limit, p.density_limit, p.green_ratio,
       p.area, p.geom, p.source_id
FROM planning_parcel p
WHERE p.city_code = :city
  AND (CAST(:parcels AS text[]) IS NULL
       OR p.code = ANY (CAST(:parcels AS text[]))
       OR CAST(p.id AS text) = ANY (CAST(:parcels AS text[])))
"""


def scenario_input(given: Any) -> str | None:
    """A scenario's name as an input (None: the baseline)."""
    if given is None or given == "":
        return None
    if not isinstance(given, str) or not given.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput(f"input 'scenario' {given!r} is the name of a design scheme")
    return given


def scheme_city(conn: Connection, city: str, scenario: str | None) -> str | None:
    """The city a scenario's scheme is held as (None for the baseline).

    Raises:
        NotFound: no such city, or no such scheme of it.
    """
    if conn.execute(text("SELECT 1 FROM city WHERE code = :c"), {"c": city}).first() is None:
        raise NotFound(f"no city {city!r}")
    if scenario is None:
        return None
    code = conn.execute(
        text("SELECT code FROM city WHERE base_city = :c AND scenario = :s"),
        {"c": city, "s": scenario},
    ).scalar()
    if code is None:
        known = (
            conn.execute(
                text("SELECT scenario FROM city WHERE base_city = :c ORDER BY scenario"),
                {"c": city},
            )
            .scalars()
            .all()
        )
        raise NotFound(
            f"city {city!r} has no scenario {scenario!r}"
            + (f"; its scenarios: {', '.join(known)}" if known else "; it has none")
        )
    return str(code)


def storey_height(value: Any) -> float:
    """A storey height in metres, checked (2 to 10 m: a storey is no lower or higher)."""
    try:
        h = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"storey_height {value!r} is not a number of metres") from None
    if not math.isfinite(h) or not 2.0 <= h <= 10.0:
        raise InvalidInput(f"storey_height {value!r} m cannot be right (2 to 10 m)")
    return h


def floors(text: str | None, height: float, storey: float) -> tuple[int, str]:
    """A building's storeys, and where they came from: 'attribute' or 'height'."""
    if text is not None:
        try:
            n = float(text)
        except ValueError:
            n = math.nan
        if math.isfinite(n) and n >= 1 and n == int(n):
            return int(n), "attribute"
    return max(1, int(math.floor(height / storey + 0.5))), "height"
