"""A PostGIS table to ingest, named the way GDAL names one: `PG:host=... dbname=... user=...`
(libpq's key=value form) or `PG:postgresql://user@host:port/dbname`, plus the table.

GDAL's own keys are understood too (`tables=schema.table(geom)`, `schemas=`, `active_schema=`),
so a string copied from an ogr2ogr command works. The password never leaves this module in
clear: `str()` of a source, its label and every message built from a driver error show `***`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from psycopg import conninfo as libpq

from cim.errors import IngestError

PREFIX = "PG:"
GDAL_KEYS = ("tables", "schemas", "active_schema")
SECRET_KEYS = ("password", "sslpassword")
_SHOWN_FIRST = ("host", "hostaddr", "port", "dbname", "user")
_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)+)?")
_URI_SECRET = re.compile(r"(?i)(password=)([^&\s]*)")
DUMP_ADVICE = (
    "a PostgreSQL dump is not read directly: load it into a database with psql (`psql -d DB -f "
    "FILE.sql`; a custom-format dump with `pg_restore -d DB FILE`), then ingest its table with "
    '`cim ingest "PG:dbname=DB" --table schema.table`'
)


def is_table_source(text: str) -> bool:
    """Whether a command-line source names a database (GDAL's `PG:` prefix) rather than a file."""
    return text[: len(PREFIX)].upper() == PREFIX


@dataclass(frozen=True)
class TableSource:
    """A table (or view) of a PostGIS database, and the columns to read from it.

    `str()` is a label safe to print and store: the table and the connection without secrets.
    """

    conninfo: str = field(repr=False)  # libpq connection string, with the password
    database: str  # the connection as a label, secrets masked
    schema: str | None = None
    table: str | None = None
    id_column: str | None = None
    geometry_column: str | None = None
    attributes: tuple[str, ...] | None = None  # None: every other column
    lod: str | None = None  # the LoD of 3D geometries, when the caller knows it
    object_type: str | None = None  # default Building
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        """The default dataset name: schema.table (a part quoted when it needs to be)."""
        return ".".join(_identifier(p) for p in (self.schema or "public", self.table or "?"))

    def __str__(self) -> str:
        return f"table {self.name} ({self.database})" if self.table else self.database

    def hide(self, text: str) -> str:
        """A message with every secret of the connection replaced by `***`."""
        return _hide(text, list(self.secrets))


def _identifier(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _unquote_value(raw: str) -> str:
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        raw = raw[1:-1]
    return re.sub(r"\\(.)", r"\1", raw)


def _quote_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _secrets_in(body: str) -> list[str]:
    """Every spelling of a password the text may hold: as written, unescaped, URI-decoded."""
    found: list[str] = []
    if body.lower().startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(body)
            if parts.password:
                found += [parts.password, unquote(parts.password)]
        except ValueError:
            pass
        for m in _URI_SECRET.finditer(body):
            found += [m.group(2), unquote(m.group(2))]
    else:
        for m in _PAIR.finditer(body):
            if m.group(1).lower() in SECRET_KEYS and m.group(2):
                found += [m.group(2), _unquote_value(m.group(2))]
    return [s for s in found if s]


def _hide(text: str, secrets: list[str]) -> str:
    """`text` with each secret replaced by `***`; a secret of under 4 characters only where it
    stands alone, so that masking it does not mangle the words around it."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
        elif secret:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text.strip()


def _split_gdal_keys(body: str) -> tuple[str, dict[str, str]]:
    """The libpq part of a key=value string and GDAL's own keys, which libpq would refuse."""
    gdal: dict[str, str] = {}
    kept: list[str] = []
    at = 0
    for m in _PAIR.finditer(body):
        if m.start() != at and body[at : m.start()].strip():
            return body, {}  # not plain pairs: let libpq say what is wrong
        at = m.end()
        if m.group(1).lower() in GDAL_KEYS:
            gdal[m.group(1).lower()] = _unquote_value(m.group(2) or "")
        else:
            kept.append(m.group(0).strip())
    if body[at:].strip():
        return body, {}
    return " ".join(kept), gdal


def split_table_name(text: str) -> tuple[str | None, str]:
    """`table`, `schema.table` or with double-quoted parts (`"My schema"."a.b"`).

    Raises:
        ValueError: more than two parts, an empty part or an unclosed quote.
    """
    parts: list[str] = []
    current = ""
    i = 0
    text = text.strip()
    while i < len(text):
        c = text[i]
        if c == '"':
            end = i + 1
            while True:
                end = text.find('"', end)
                if end < 0:
                    raise ValueError(f"unclosed quote in {text!r}")
                if text[end + 1 : end + 2] == '"':
                    end += 2
                    continue
                break
            current += text[i + 1 : end].replace('""', '"')
            i = end + 1
        elif c == ".":
            parts.append(current)
            current = ""
            i += 1
        else:
            current += c
            i += 1
    parts.append(current)
    if len(parts) > 2 or any(not p.strip() for p in parts):
        raise ValueError(f"{text!r} is not a table name (table or schema.table)")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def table_source(
    text: str,
    table: str | None = None,
    id_column: str | None = None,
    geometry_column: str | None = None,
    attributes: tuple[str, ...] | None = None,
    lod: str | None = None,
    object_type: str | None = None,
) -> TableSource:
    """Parse a `PG:` source and the table it names (`table`, else GDAL's `tables=`).

    Raises:
        IngestError: not a connection string libpq accepts, or a table name that is not one;
            the message shows the connection with its password masked.
    """
    body = text[len(PREFIX) :].strip() if is_table_source(text) else text.strip()
    secrets = _secrets_in(body)
    shown = PREFIX + _hide(body, secrets)
    uri = body.lower().startswith(("postgresql://", "postgres://"))
    conninfo, gdal = (body, {}) if uri else _split_gdal_keys(body)
    try:
        params: dict[str, Any] = libpq.conninfo_to_dict(conninfo)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's own parse error
        raise IngestError(
            shown, f"not a PostgreSQL connection string: {_hide(str(exc), secrets)}"
        ) from None
    for key in SECRET_KEYS:
        if params.get(key):
            secrets += [str(params[key]), quote(str(params[key]), safe="")]
    label = PREFIX + " ".join(
        f"{k}={'***' if k in SECRET_KEYS else _quote_value(str(params[k]))}"
        for k in [
            *[k for k in _SHOWN_FIRST if k in params],
            *sorted(set(params) - set(_SHOWN_FIRST)),
        ]
    )
    if lod is not None and not re.fullmatch(r"[0-4](\.[0-9])?", lod):
        raise IngestError(label, f"--lod {lod!r}: an LoD is 0 to 4, or with a decimal, e.g. 2.2")
    schema_default = gdal.get("active_schema") or (gdal.get("schemas", "").split(",")[0] or None)
    named = table or gdal.get("tables")
    geometry = geometry_column
    schema = name = None
    if named:
        if table is None and "," in named:
            raise IngestError(
                label, f"tables={named} names several tables: give one with --table schema.table"
            )
        m = re.fullmatch(r"(.+)\(([^()]+)\)", named.strip())
        if m and table is None:  # GDAL's tables=schema.table(geometry_column)
            named, geometry = m.group(1), geometry or m.group(2)
        try:
            schema, name = split_table_name(named)
        except ValueError as exc:
            raise IngestError(label, f"--table: {exc}") from None
    return TableSource(
        libpq.make_conninfo("", **params),
        label,
        schema or (schema_default if name else None) or ("public" if name else None),
        name,
        id_column,
        geometry,
        attributes,
        lod,
        object_type,
        tuple(dict.fromkeys(secrets)),
    )
