"""Datasets already in the database: list them, delete one (with its objects, in one statement)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from cim.errors import NotFound


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
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM tile_cache t USING (SELECT DISTINCT o.tile_level, o.tile_x, o.tile_y"
                " FROM city_object o JOIN dataset d ON d.city_code = o.city_code"
                " AND d.id = o.dataset_id WHERE d.city_code = :c AND d.name = :n) k"
                " WHERE t.city_code = :c AND t.tile_level = k.tile_level"
                " AND t.tile_x = k.tile_x AND t.tile_y = k.tile_y"
            ),
            {"c": city, "n": name},
        )
        row = conn.execute(
            text("DELETE FROM dataset WHERE city_code = :c AND name = :n RETURNING object_count"),
            {"c": city, "n": name},
        ).first()
    if row is None:
        raise NotFound(f"no dataset {name!r} in city {city!r}")
    return int(row[0])
