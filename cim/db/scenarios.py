"""A city as one of its design schemes (方案) sees it: the one rule every package that reads a
scenario follows (features, tiles, analyses).

A scheme is held as a city of its own, `{city}~{scenario}`, whose `base_city` names the city it
is a scheme for (migration 0019; written by ingest's dataset repository). The scenario's view of
the city is the baseline's objects, less those the scheme replaces (an object of the scheme with
the same id), and the scheme's objects; the baseline's rows never change.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from cim.errors import NotFound

# the city's objects as a scenario sees them (:scheme is the scheme's city, `{city}~{scenario}`;
# NULL: the baseline alone). Conditions put on the whole (a tile, a bbox) reach both branches.
OBJECTS = """
SELECT o.* FROM city_object o
WHERE o.city_code = :city
  AND (CAST(:scheme AS text) IS NULL OR NOT EXISTS (
       SELECT 1 FROM city_object s WHERE s.city_code = :scheme AND s.source_id = o.source_id))
UNION ALL
SELECT o.* FROM city_object o WHERE o.city_code = :scheme
"""

_CITY = text("SELECT 1 FROM city WHERE code = :c")
_SCHEME = text("SELECT code FROM city WHERE base_city = :c AND scenario = :s")
_SCHEMES = text("SELECT scenario FROM city WHERE base_city = :c ORDER BY scenario")


def scheme_city(conn: Connection, city: str, scenario: str | None) -> str | None:
    """The city a scenario's scheme is held as (None for the baseline).

    Raises:
        NotFound: no such city, or no such scheme of it (the message lists the city's schemes).
    """
    if conn.execute(_CITY, {"c": city}).first() is None:
        raise NotFound(f"no city {city!r}")
    if scenario is None:
        return None
    code = conn.execute(_SCHEME, {"c": city, "s": scenario}).scalar()
    if code is None:
        known = conn.execute(_SCHEMES, {"c": city}).scalars().all()
        raise NotFound(
            f"city {city!r} has no scenario {scenario!r}"
            + (f"; its scenarios: {', '.join(known)}" if known else "; it has none")
        )
    return str(code)
