"""The cities and their datasets: the one module that writes the `city` and `dataset` tables.

The ingest creates a city when new, replaces a dataset of the same name and marks the new one
ready when all its objects are in (on the ingest's own connection, inside its transaction);
commands list and delete datasets. Deleting or finishing a dataset makes the database forget
the cached tiles it touches (a trigger, migration 0007).
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine, text

from cim.errors import IngestError, NotFound


def ensure_city(
    pg: psycopg.Connection[Any],
    code: str,
    crs: str,
    name_zh: str | None,
    name_en: str | None,
    scheme_of: tuple[str, str] | None = None,
) -> None:
    """Create the city when new; fill its names and CRS where they are empty. `scheme_of`
    (city, scenario) makes it a design scheme of that city (migration 0019)."""
    base, scenario = scheme_of or (None, None)
    pg.execute(
        "INSERT INTO city (code, name_zh, name_en, crs, base_city, scenario) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (code) DO UPDATE SET name_zh = COALESCE(EXCLUDED.name_zh, city.name_zh), "
        "name_en = COALESCE(EXCLUDED.name_en, city.name_en), "
        "crs = COALESCE(city.crs, EXCLUDED.crs)",
        (code, name_zh, name_en, crs, base, scenario),
    )


def scheme_city(pg: psycopg.Connection[Any], city: str, scenario: str) -> tuple[str, str | None]:
    """The code a design scheme of `city` is held under, and the city's CRS.

    Raises:
        IngestError: the scenario's name is not usable, or the city does not exist.
    """
    if (
        not scenario
        or len(scenario) > 48
        or not scenario.replace("-", "").replace("_", "").isalnum()
    ):
        raise IngestError(
            scenario, "a scenario's name is letters, digits, '-' or '_' (at most 48), e.g. scheme-a"
        )
    row = pg.execute("SELECT crs, base_city FROM city WHERE code = %s", (city,)).fetchone()
    if row is None:
        raise IngestError(city, f"no city {city!r}: ingest its baseline before its schemes")
    if row[1] is not None:
        raise IngestError(city, f"{city!r} is itself a scheme of {row[1]!r}")
    return f"{city}~{scenario}", row[0]


def replace_dataset(
    pg: psycopg.Connection[Any], city: str, name: str, fields: dict[str, Any]
) -> tuple[int, bool]:
    """Delete a dataset of that name (a re-ingest replaces it) and insert the new one, loading.

    Returns the new dataset id and whether an older one was replaced.
    """
    deleted = pg.execute(
        "DELETE FROM dataset WHERE city_code = %s AND name = %s RETURNING id", (city, name)
    ).fetchone()
    row = pg.execute(
        "INSERT INTO dataset (city_code, name, source_path, format, format_version, source_crs,"
        " checksum, object_count, counts, warnings, appearance, file_metadata, attribute_keys,"
        " status) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, '{}', '[]', %s, %s, '{}', 'loading')"
        " RETURNING id",
        (
            city,
            name,
            fields["source_path"],
            fields["format"],
            fields["format_version"],
            fields["source_crs"],
            fields["checksum"],
            orjson.dumps(fields["appearance"]).decode(),
            orjson.dumps(fields["metadata"]).decode(),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0]), deleted is not None


def finish_dataset(
    pg: psycopg.Connection[Any], city: str, dataset_id: int, fields: dict[str, Any]
) -> None:
    """Record a dataset's final counts, warnings and appearance (a streamed reader finds
    materials and textures as it goes) and mark it ready."""
    pg.execute(
        "UPDATE dataset SET object_count = %s, counts = %s, warnings = %s, attribute_keys = %s,"
        " appearance = %s, file_metadata = %s, status = 'ready',"
        " checksum = COALESCE(%s, checksum)"  # the file's, when taken while it was read
        " WHERE city_code = %s AND id = %s",
        (
            fields["object_count"],
            orjson.dumps(fields["counts"]).decode(),
            orjson.dumps(fields["warnings"]).decode(),
            sorted(fields["attribute_keys"]),
            orjson.dumps(fields["appearance"]).decode(),
            orjson.dumps(fields["metadata"]).decode(),
            fields.get("checksum"),
            city,
            dataset_id,
        ),
    )


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


def dataset_checksum(engine: Engine, city: str, name: str) -> str | None:
    """The SHA-256 of the file a dataset was ingested from; None when there is no such dataset."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT checksum FROM dataset WHERE city_code = :c AND name = :n"),
            {"c": city, "n": name},
        ).scalar()


def delete_dataset(engine: Engine, city: str, name: str) -> int:
    """Delete a dataset and everything it brought, in one statement; returns how many city
    objects went.

    Raises:
        NotFound: no dataset of that name in that city.
    """
    with engine.begin() as conn:
        found = conn.execute(
            text("DELETE FROM dataset WHERE city_code = :c AND name = :n RETURNING object_count"),
            {"c": city, "n": name},
        ).first()
    if found is None:
        raise NotFound(f"no dataset {name!r} in city {city!r}")
    return int(found[0])
