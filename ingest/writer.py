"""The one writer: puts any reader's prepared rows into PostGIS with COPY, inside the caller's
transaction, so that a dataset lands whole or not at all."""

from __future__ import annotations

import re
from typing import Any

import orjson
import psycopg
from psycopg import sql

from cim.errors import IngestError
from ingest.prepare import PreparedBatch

OBJECT_COLUMNS = ("city_code", "id", "dataset_id", "source_id", "type", "parents", "children",
                  "attributes", "extra", "lods", "footprint", "bbox", "z_min", "z_max")
GEOMETRY_COLUMNS = ("city_code", "object_id", "idx", "lod", "type", "geom", "structure",
                    "origin_x", "origin_y", "origin_z", "mesh_vertices", "mesh_triangles",
                    "mesh_surfaces")
_DUPLICATE = re.compile(r"Key \(city_code, source_id\)=\((.*?), (.*)\) already exists")


def _copy_sql(table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


class DatasetWriter:
    """Writes one dataset's rows through a psycopg connection whose transaction the caller owns."""

    def __init__(self, conn: psycopg.Connection[Any], path: str) -> None:
        self.conn = conn
        self.path = path

    def ensure_city(self, code: str, crs: str, name_zh: str | None, name_en: str | None) -> None:
        """Create the city when new; fill its names and CRS where they are empty."""
        self.conn.execute(
            "INSERT INTO city (code, name_zh, name_en, crs) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (code) DO UPDATE SET name_zh = COALESCE(EXCLUDED.name_zh, city.name_zh), "
            "name_en = COALESCE(EXCLUDED.name_en, city.name_en), crs = COALESCE(city.crs, EXCLUDED.crs)",
            (code, name_zh, name_en, crs),
        )

    def replace_dataset(self, city: str, name: str, fields: dict[str, Any]) -> tuple[int, bool]:
        """Delete a dataset of that name (a re-ingest replaces it) and insert the new one.

        Returns the new dataset id and whether an older one was replaced.
        """
        deleted = self.conn.execute(
            "DELETE FROM dataset WHERE city_code = %s AND name = %s RETURNING id", (city, name)
        ).fetchone()
        row = self.conn.execute(
            "INSERT INTO dataset (city_code, name, source_path, format, format_version, source_crs,"
            " checksum, object_count, counts, warnings, appearance, file_metadata, attribute_keys,"
            " status) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, '{}', '[]', %s, %s, '{}', 'loading')"
            " RETURNING id",
            (city, name, fields["source_path"], fields["format"], fields["format_version"],
             fields["source_crs"], fields["checksum"], orjson.dumps(fields["appearance"]).decode(),
             orjson.dumps(fields["metadata"]).decode()),
        ).fetchone()
        assert row is not None
        return int(row[0]), deleted is not None

    def reserve_ids(self, count: int) -> list[int]:
        """`count` fresh city-object ids from the table's sequence (safe with concurrent ingests)."""
        rows = self.conn.execute(
            "SELECT nextval(pg_get_serial_sequence('city_object', 'id'))"
            " FROM generate_series(1, %s)", (count,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def write(self, batch: PreparedBatch) -> None:
        """COPY a batch of objects and their geometries.

        Raises:
            IngestError: an object id already exists in this city.
        """
        try:
            with self.conn.cursor() as cur:
                with cur.copy(_copy_sql("city_object", OBJECT_COLUMNS)) as copy:
                    for row in batch.objects:
                        copy.write_row(row)
                with cur.copy(_copy_sql("object_geometry", GEOMETRY_COLUMNS)) as copy:
                    for row in batch.geometries:
                        copy.write_row(row)
        except psycopg.errors.UniqueViolation as exc:
            detail = exc.diag.message_detail or ""
            m = _DUPLICATE.search(detail)
            oid = m.group(2) if m else None
            raise IngestError(
                self.path, "duplicate city object id: the id is already used in this file or by "
                "another dataset of the city (ingest into another city or delete that dataset)", oid,
            ) from None
        except psycopg.errors.DataError as exc:
            raise IngestError(self.path, f"the database refused a value: {exc.diag.message_primary}") from None

    def finish(self, city: str, dataset_id: int, fields: dict[str, Any]) -> None:
        """Record the dataset's final counts and warnings, and mark it ready."""
        self.conn.execute(
            "UPDATE dataset SET object_count = %s, counts = %s, warnings = %s, attribute_keys = %s,"
            " status = 'ready' WHERE city_code = %s AND id = %s",
            (fields["object_count"], orjson.dumps(fields["counts"]).decode(),
             orjson.dumps(fields["warnings"]).decode(), sorted(fields["attribute_keys"]),
             city, dataset_id),
        )
