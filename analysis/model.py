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

from cim.db.scenarios import OBJECTS as OBJECTS  # the analyses read them from here
from cim.db.scenarios import scheme_city as scheme_city
from cim.errors import InvalidInput

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
