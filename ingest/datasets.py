"""Datasets already in the database: list them, delete one (with its objects, in one statement)."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, text

from cim.errors import NotFound
from ingest.writer import drop_cached_tiles


def list_datasets(engine: Engine, city: str | None = None) -> list[dict[str, Any]]:
    """Every dataset (of one city, when given), newest first."""
    sql = text("""
        SELECT city_code, id, name, format, format_version, source_crs, object_count, warnings,
               imported_at, source_path
        FROM dataset WHERE (CAST(:city AS text) IS NULL OR city_code = :city)
        ORDER BY city_code, imported_at DESC""")
    with engine.connect() as conn:
        rows = conn.execute(sql, {"city": city}).mappings().all()
    return [dict(r) for r in rows]


def delete_dataset(engine: Engine, city: str, name: str) -> int:
    """Delete a dataset and everything it brought; returns how many city objects went.

    Raises:
        NotFound: no dataset of that name in that city.
    """
    raw = engine.raw_connection()
    try:
        pg: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        with pg.transaction():
            found = pg.execute(
                "SELECT id, object_count FROM dataset WHERE city_code = %s AND name = %s",
                (city, name),
            ).fetchone()
            if found is None:
                raise NotFound(f"no dataset {name!r} in city {city!r}")
            drop_cached_tiles(pg, city, int(found[0]))
            pg.execute("DELETE FROM dataset WHERE city_code = %s AND id = %s", (city, found[0]))
    finally:
        raw.close()
    return int(found[1])
