"""Whether a city exists: the one check every package that serves, tiles or grades a city makes
(the `city` table itself is written by ingest's dataset repository, `ingest/datasets.py`)."""

from __future__ import annotations

from sqlalchemy import Connection, text

from cim.errors import NotFound

_EXISTS = text("SELECT 1 FROM city WHERE code = :c")


def city_exists(conn: Connection, code: str) -> bool:
    """True when the city is in the database."""
    return conn.execute(_EXISTS, {"c": code}).first() is not None


def require_city(conn: Connection, code: str) -> None:
    """Check that a city exists, without computing anything about it.

    Raises:
        NotFound: no such city.
    """
    if not city_exists(conn, code):
        raise NotFound(f"no city {code!r}")
