"""The one writer of city objects, their geometries and texture images: puts any reader's
prepared rows into PostGIS with COPY, inside the caller's transaction, so that a dataset lands
whole or not at all (its `city` and `dataset` rows are written by ingest/datasets.py)."""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from cim.errors import IngestError
from ingest.prepare import PreparedBatch
from ingest.textures import TextureImage

# Binary COPY: geometry columns take EWKB bytes and jsonb columns version-1 JSON bytes as they are
# (sent as bytea, read by the column type's own binary input).
OBJECT_COLUMNS = {
    "city_code": "text",
    "id": "int8",
    "dataset_id": "int8",
    "source_id": "text",
    "type": "text",
    "parents": "text[]",
    "children": "text[]",
    "attributes": "bytea",
    "extra": "bytea",
    "lods": "text[]",
    "footprint": "bytea",
    "bbox": "bytea",
    "z_min": "float8",
    "z_max": "float8",
    "tile_level": "int2",
    "tile_x": "int4",
    "tile_y": "int4",
    "size": "float8",
    "display_idx": "int2",
    "mesh_weight": "int8",
    "plain_weight": "int8",
}
GEOMETRY_COLUMNS = {
    "city_code": "text",
    "object_id": "int8",
    "idx": "int2",
    "lod": "text",
    "type": "text",
    "geom": "bytea",
    "structure": "bytea",
    "point_data": "bytea",
    "origin_x": "float8",
    "origin_y": "float8",
    "origin_z": "float8",
    "mesh_vertices": "bytea",
    "mesh_triangles": "bytea",
    "mesh_surfaces": "bytea",
    "mesh_colours": "bytea",
    "mesh_uvs": "bytea",
    "mesh_textures": "bytea",
}
_DUPLICATE = re.compile(r"Key \(city_code, source_id\)=\((.*?), (.*)\) already exists")


def _copy_sql(table: str, columns: dict[str, str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


class DatasetWriter:
    """Writes one dataset's rows through a psycopg connection whose transaction the caller owns."""

    def __init__(self, conn: psycopg.Connection[Any], path: str) -> None:
        self.conn = conn
        self.path = path
        self._queue: queue.Queue[PreparedBatch | None] = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _drain(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._copy(batch)
                except BaseException as exc:  # handed to the main thread by flush()
                    self._error = exc

    def write(self, batch: PreparedBatch) -> None:
        """Queue a batch for COPY; the next one is prepared meanwhile (COPY runs in a thread,
        while the server works the main thread goes on).

        Raises:
            IngestError: an earlier batch was refused.
        """
        if self._error is not None:
            self.flush()
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="cim-copy", daemon=True)
            self._thread.start()
        self._queue.put(batch)

    def abandon(self) -> None:
        """Stop writing (after an error elsewhere): drop queued batches, wait for the thread."""
        if self._thread is not None:
            self._error = self._error or RuntimeError("abandoned")
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._error = None

    def flush(self) -> None:
        """Wait until every queued batch is written.

        Raises:
            IngestError: a batch was refused.
        """
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _copy(self, batch: PreparedBatch) -> None:
        """COPY a batch of objects and their geometries.

        Raises:
            IngestError: an object id already exists in this city.
        """
        try:
            with self.conn.cursor() as cur:
                with cur.copy(_copy_sql("city_object", OBJECT_COLUMNS)) as copy:
                    copy.set_types(list(OBJECT_COLUMNS.values()))
                    for row in batch.objects:
                        copy.write_row(row)
                with cur.copy(_copy_sql("object_geometry", GEOMETRY_COLUMNS)) as copy:
                    copy.set_types(list(GEOMETRY_COLUMNS.values()))
                    for row in batch.geometries:
                        copy.write_row(row)
        except psycopg.errors.UniqueViolation as exc:
            detail = exc.diag.message_detail or ""
            m = _DUPLICATE.search(detail)
            oid = m.group(2) if m else None
            raise IngestError(
                self.path,
                "duplicate city object id: the id is already used in this file or by "
                "another dataset of the city (ingest into another city or delete that dataset)",
                oid,
            ) from None
        except psycopg.errors.DataError as exc:
            raise IngestError(
                self.path, f"the database refused a value: {exc.diag.message_primary}"
            ) from None
        except psycopg.errors.InternalError as exc:  # e.g. PostGIS refusing a geometry
            raise IngestError(
                self.path, f"the database refused a geometry: {exc.diag.message_primary}"
            ) from None

    def store_textures(self, city: str, dataset_id: int, images: Iterable[TextureImage]) -> int:
        """Store a dataset's texture images (read and written one at a time); returns how many."""
        self.flush()
        stored = 0
        for image in images:
            self.conn.execute(
                "INSERT INTO texture_image (city_code, dataset_id, idx, source, mime, width,"
                " height, sha256, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    city,
                    dataset_id,
                    image.idx,
                    image.source,
                    image.mime,
                    image.width,
                    image.height,
                    image.sha256,
                    image.data,
                ),
            )
            stored += 1
        return stored


class IdSource:
    """Fresh city-object ids from the table's sequence, taken in blocks on a connection of its
    own (sequences are not transactional, so this never waits for the COPY connection)."""

    def __init__(self, conn: psycopg.Connection[Any], block: int = 10_000) -> None:
        self.conn = conn
        self.block = block
        self._free: list[int] = []

    def take(self, count: int) -> list[int]:
        """`count` ids, unique even with concurrent ingests."""
        while len(self._free) < count:
            rows = self.conn.execute(
                "SELECT nextval(pg_get_serial_sequence('city_object', 'id'))"
                " FROM generate_series(1, %s)",
                (max(self.block, count),),
            ).fetchall()
            self._free.extend(int(r[0]) for r in rows)
        taken, self._free = self._free[:count], self._free[count:]
        return taken
