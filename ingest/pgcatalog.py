"""What a PostGIS table holds, read from the database's catalogue before any row: its exact
name, its columns, the geometry column with its SRID and CRS, the id column, the columns kept as
attributes or used to extrude, and a fingerprint of its rows; and the query that reads them.

Names on the command line are matched as written, else without regard to case when that is
unambiguous (PostgreSQL folds unquoted names to lower case; users type them either way). Every
identifier reaches SQL through psycopg's `sql.Identifier`, never through string formatting.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import psycopg
from psycopg import conninfo as libpq
from psycopg import sql
from psycopg.types.json import set_json_loads

from cim import jsonvalues
from cim.crs import parse_crs
from cim.errors import IngestError, InvalidCRS
from ingest.footprints import FLOOR_NAMES, HEIGHT_NAMES
from ingest.model import ReadOptions
from ingest.pgsource import TableSource
from ingest.surface_types import Frame

ID_NAMES = ("id", "gid", "fid", "ogc_fid", "objectid")  # after the primary key
GEOMETRY_TYPES = ("geometry", "geography")
RELATION_KINDS = ("r", "v", "m", "p", "f")  # tables, views, materialised, partitioned, foreign


def connect(source: TableSource) -> psycopg.Connection[Any]:
    """A read-only, repeatable-read connection: one snapshot for the count, the fingerprint
    and the rows, and nothing written to the user's database.

    Raises:
        IngestError: the server cannot be reached or refuses the login (password masked).
    """
    params = libpq.conninfo_to_dict(source.conninfo)
    params.setdefault("application_name", "cim ingest")
    params.setdefault("connect_timeout", 10)
    try:
        conn = psycopg.connect(libpq.make_conninfo("", **params))
    except psycopg.Error as exc:
        raise IngestError(source.database, f"cannot connect: {source.hide(str(exc))}") from None
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    set_json_loads(jsonvalues.loads, conn)
    return conn


class TableLayout:
    """The table a `TableSource` names, as its catalogue describes it.

    Raises (on construction):
        IngestError: no PostGIS, no such table or column, an ambiguous choice (every
            candidate listed), several SRIDs, an SRID unknown to the database.
    """

    def __init__(
        self, conn: psycopg.Connection[Any], source: TableSource, options: ReadOptions
    ) -> None:
        self._conn = conn
        self.source = source
        self.options = options
        self.path = str(source)
        self.warnings: list[str] = []
        self.crs_name: str | None = None
        self.frame: Frame = "projected"
        self._inspect()

    def _fail(self, problem: str, row: str | None = None) -> IngestError:
        return IngestError(self.path, self.source.hide(problem), row)

    def _query(self, query: Any, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise self._fail(f"the database refused a query: {exc}") from None

    def _inspect(self) -> None:
        [(postgis,)] = self._query(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
        )
        if postgis is None:
            raise IngestError(self.source.database, "the database has no PostGIS extension")
        self.version = str(postgis)  # the PostGIS version: "PostGIS table 3.3.2"
        if not self.source.table:
            raise IngestError(
                self.source.database,
                "name the table to read with --table schema.table; " + self._tables_listed(),
            )
        self._oid, self.schema, self.table = self._resolve_table()
        columns = self._query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.atttypmod"
            " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (self._oid,),
        )
        self.columns = [str(c[0]) for c in columns]
        self._types = {str(c[0]): str(c[1]) for c in columns}
        geometries = [str(c[0]) for c in columns if c[2] in GEOMETRY_TYPES]
        self.geometry_column = self._geometry_column(geometries)
        self._geography = dict((c[0], c[2]) for c in columns)[self.geometry_column] == "geography"
        self.id_column = self._id_column()
        typmod = next(int(c[3]) for c in columns if c[0] == self.geometry_column)
        self.srid = self._srid(typmod)
        self.crs_name = self._crs_name(self.srid)
        self.attributes = self._attributes(geometries)
        self.height_column, self.floors_column, self.base_column = self._extrusion_columns()
        rows, fingerprint = self._fingerprint()
        self.rows = rows
        what = [self.source.database, self.schema, self.table, self.id_column, self.geometry_column]
        self.checksum = hashlib.sha256(
            orjson.dumps([*what, self.attributes, rows, fingerprint])
        ).hexdigest()  # what was read, and a fingerprint of every row's content
        self.metadata: dict[str, Any] = {
            "database": self.source.database,
            "table": self.source.name,
            "id_column": self.id_column,
            "geometry_column": self.geometry_column,
            "geometry_type": self._types[self.geometry_column],
            "srid": self.srid,
            "rows": rows,
            "attributes": self.attributes,
            "lod": self.source.lod,
            "extrusion": {
                "height_column": self.height_column,
                "floors_column": self.floors_column,
                "storey_height": self.options.storey_height if self.floors_column else None,
                "base_column": self.base_column,
            },
            "checksum": self.checksum,
        }

    def _tables_listed(self) -> str:
        rows = self._query(
            "SELECT n.nspname, c.relname, a.attname FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE t.typname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped"
            " AND c.relkind = ANY(%s) AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " ORDER BY 1, 2, 3 LIMIT 41",
            (list(GEOMETRY_TYPES), list(RELATION_KINDS)),
        )
        if not rows:
            return "the database has no table with a geometry column"
        listed = ", ".join(f"{r[0]}.{r[1]} ({r[2]})" for r in rows[:40])
        return "tables with a geometry column: " + listed + (", ..." if len(rows) > 40 else "")

    def _resolve_table(self) -> tuple[int, str, str]:
        """The table's oid and exact names: as written, else the one matching without case."""
        schema, table = self.source.schema or "public", self.source.table or ""
        rows = self._query(
            "SELECT c.oid, n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = ANY(%s)"
            " AND lower(n.nspname) = lower(%s) AND lower(c.relname) = lower(%s)",
            (list(RELATION_KINDS), schema, table),
        )
        exact = [r for r in rows if (r[1], r[2]) == (schema, table)]
        if len(exact) == 1 or len(rows) == 1:
            oid, nsp, rel = (exact or rows)[0]
            return int(oid), str(nsp), str(rel)
        raise self._fail(f"no table {self.source.name}; " + self._tables_listed())

    def _column(self, name: str, option: str) -> str:
        """A column named on the command line: as written, else the one matching without case."""
        if name in self.columns:
            return name
        folded = [c for c in self.columns if c.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        raise self._fail(f"{option} {name!r} is not a column (columns: {', '.join(self.columns)})")

    def _geometry_column(self, geometries: list[str]) -> str:
        if self.source.geometry_column:
            name = self._column(self.source.geometry_column, "--geometry-column")
            if name not in geometries:
                raise self._fail(
                    f"--geometry-column {name!r} is a {self._types[name]} column, not a "
                    f"geometry (geometry columns: {', '.join(geometries) or 'none'})"
                )
            return name
        if len(geometries) == 1:
            return geometries[0]
        if not geometries:
            raise self._fail("the table has no geometry or geography column")
        raise self._fail(
            "the table has several geometry columns: choose one with --geometry-column ("
            + ", ".join(f"{g} {self._types[g]}" for g in geometries)
            + ")"
        )

    def _id_column(self) -> str:
        if self.source.id_column:
            return self._column(self.source.id_column, "--id-column")
        keys = self._query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = %s AND i.indisprimary AND i.indnatts = 1",
            (self._oid,),
        )
        if keys:
            return str(keys[0][0])
        for name in ID_NAMES:
            found = [c for c in self.columns if c.lower() == name]
            if len(found) == 1:
                return found[0]
        raise self._fail(
            "the table has no single-column primary key and no column named "
            + ", ".join(ID_NAMES)
            + f": choose the id column with --id-column (columns: {', '.join(self.columns)})"
        )

    def _srid(self, typmod: int) -> int:
        """The column's SRID: from its type, else the one its rows share."""
        [(srid,)] = self._query("SELECT postgis_typmod_srid(%s)", (typmod,))
        if srid:
            return int(srid)
        rows = self._query(
            sql.SQL("SELECT DISTINCT ST_SRID({}) FROM {} WHERE {} IS NOT NULL LIMIT 3").format(
                sql.Identifier(self.geometry_column),
                sql.Identifier(self.schema, self.table),
                sql.Identifier(self.geometry_column),
            )
        )
        if len(rows) > 1:
            raise self._fail(
                f"the rows of column {self.geometry_column} have several SRIDs ("
                + ", ".join(str(r[0]) for r in rows)
                + "): one table is one CRS; make a view per SRID, or ST_Transform them to one"
            )
        return int(rows[0][0]) if rows else 0

    def _crs_name(self, srid: int) -> str | None:
        """`EPSG:n` for an EPSG SRID, else the WKT spatial_ref_sys holds for it."""
        if srid == 0:
            self.warnings.append(
                f"column {self.geometry_column} has SRID 0 (no CRS): the CRS is the one --crs gives"
            )
            return None
        rows = self._query(
            "SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys WHERE srid = %s", (srid,)
        )
        if not rows:
            raise self._fail(
                f"SRID {srid} of column {self.geometry_column} is not in the database's "
                "spatial_ref_sys: give the CRS with --crs"
            )
        auth, code, wkt = rows[0]
        name = f"EPSG:{code}" if str(auth).upper() == "EPSG" and code else (wkt or None)
        if name:
            try:
                crs = parse_crs(name)
                self.frame = (
                    "geocentric"
                    if crs.is_geocentric
                    else "geographic"
                    if crs.is_geographic
                    else "projected"
                )
            except InvalidCRS:
                pass  # the ingest says so, with the file's other CRS checks
        return name

    def _attributes(self, geometries: list[str]) -> list[str]:
        taken = {self.id_column, self.geometry_column}
        if self.source.attributes is not None:
            names = [self._column(a, "--attributes") for a in self.source.attributes if a]
            for name in names:
                if name in geometries:
                    raise self._fail(
                        f"--attributes: {name!r} is a geometry column; an object has one "
                        f"geometry ({self.geometry_column})"
                    )
            return list(dict.fromkeys(names))
        left = [g for g in geometries if g != self.geometry_column]
        if left:
            self.warnings.append(
                "not kept as attributes: the other geometry columns " + ", ".join(left)
            )
        return [c for c in self.columns if c not in taken and c not in geometries]

    def _extrusion_columns(self) -> tuple[str | None, str | None, str | None]:
        o = self.options
        height = o.height_attr and self._column(o.height_attr, "--height-column")
        floors = o.floors_attr and self._column(o.floors_attr, "--floors-column")
        base = o.base_attr and self._column(o.base_attr, "--base-column")
        self.explicit_height = bool(height or floors)
        if not self.explicit_height:
            lower = {c.lower(): c for c in self.columns}
            height = next((lower[n.lower()] for n in HEIGHT_NAMES if n.lower() in lower), None)
            if height is None:
                floors = next((lower[n.lower()] for n in FLOOR_NAMES if n.lower() in lower), None)
        return height or None, floors or None, base or None

    def _fingerprint(self) -> tuple[int, str]:
        """The number of rows and an order-free hash of their whole content (each row's text)."""
        [(rows, total)] = self._query(
            sql.SQL(
                "SELECT count(*), COALESCE(sum(hashtextextended(t::text, 0)), 0) FROM {} AS t"
            ).format(sql.Identifier(self.schema, self.table))
        )
        return int(rows), str(total)

    def select(self) -> sql.Composed:
        """The query of the rows: id as text, EWKB, attributes as JSON, extrusion columns."""

        def col(name: str | None, cast: str = "") -> sql.Composable:
            if name is None:
                return sql.SQL("NULL")
            return sql.SQL("t.{}" + cast).format(sql.Identifier(name))

        attributes: sql.Composable = (
            sql.SQL("(SELECT to_json(r) FROM (SELECT {}) AS r)").format(
                sql.SQL(", ").join(col(a) for a in self.attributes)
            )
            if self.attributes
            else sql.SQL("NULL")
        )
        geometry = col(self.geometry_column, "::geometry" if self._geography else "")
        return sql.SQL("SELECT {}, ST_AsEWKB({}), {}, {}, {}, {} FROM {} AS t ORDER BY {}").format(
            col(self.id_column, "::text"),
            geometry,
            attributes,
            col(self.height_column, "::text"),
            col(self.floors_column, "::text"),
            col(self.base_column, "::text"),
            sql.Identifier(self.schema, self.table),
            col(self.id_column),
        )
