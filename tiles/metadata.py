"""Property tables (EXT_structural_metadata) and 3D Tiles 1.0 batch tables of a tile's objects,
by their city's schema (tiles.properties).

Each property of the class is in every tile's table (the official validator wants them all,
required or not). A missing or empty text is written as the noData value "\\u0000", so no text
column is ever zero bytes long (a buffer view may not be empty); the columns of a tile in which
a property has no value at all share one buffer view of noData values per type. Pure: rows in,
JSON and bytes out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from tiles.properties import (
    BOOLEAN,
    CLASS,
    FLOAT64,
    FLOAT_NODATA,
    INT32,
    INT32_NODATA,
    STRING,
    TEXT_NODATA,
    Property,
    PropertySchema,
    SchemaMismatch,
    schema_of_rows,
)

# the noData values and the error are also the callers' (tiles.properties holds them)
__all__ = [
    "FLOAT_NODATA",
    "INT32_NODATA",
    "TEXT_NODATA",
    "SchemaMismatch",
    "batch_table",
    "property_table",
]

_TEXT_NODATA = TEXT_NODATA.encode()


def _text(value: Any) -> bytes:
    """A value of a text property: text as it is, anything else as its JSON text, no value
    and empty text as noData."""
    if value is None or value == "":
        return _TEXT_NODATA
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


class _Views:
    """The buffer-view contents of a property table, with one shared column of noData values
    per kind for the properties none of the tile's objects has."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.data: list[bytes] = []
        self._empty: dict[str, dict[str, Any]] = {}

    def add(self, data: bytes) -> int:
        self.data.append(data)
        return len(self.data) - 1

    def text(self, encoded: list[bytes]) -> dict[str, Any]:
        offsets = np.zeros(len(encoded) + 1, dtype="<u4")
        np.cumsum(list(map(len, encoded)), out=offsets[1:])
        return {
            "values": self.add(b"".join(encoded)),
            "stringOffsets": self.add(offsets.tobytes()),
            "stringOffsetType": "UINT32",
        }

    def empty(self, kind: str) -> dict[str, Any]:
        """The table entry of a column of noData values (made once per kind)."""
        if kind not in self._empty:
            if kind == STRING:
                self._empty[kind] = self.text([_TEXT_NODATA] * self.count)
            else:
                nodata, dtype = (INT32_NODATA, "<i4") if kind == INT32 else (FLOAT_NODATA, "<f8")
                array = np.full(self.count, nodata, dtype=dtype)
                self._empty[kind] = {"values": self.add(array.tobytes())}
        return dict(self._empty[kind])


def _number(value: Any, prop: Property) -> Any:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise SchemaMismatch(f"property {prop.name!r} is a number in the city, not {value!r}")


def property_table(
    rows: list[dict[str, Any]], schema: PropertySchema | None = None
) -> tuple[dict[str, Any], list[bytes]]:
    """The EXT_structural_metadata object for `rows` (one per feature, in feature-id order,
    values by property name) and the buffer-view contents its table refers to by index.

    Raises:
        SchemaMismatch: a value that the schema's type cannot hold.
    """
    schema = schema or schema_of_rows(rows)
    table: dict[str, Any] = {}
    views = _Views(len(rows))
    for prop in schema.properties:
        values = [row.get(prop.name) for row in rows]
        if prop.kind == STRING:
            encoded = [_text(v) for v in values]
            empty = all(e == _TEXT_NODATA for e in encoded)
            table[prop.ident] = views.empty(STRING) if empty else views.text(encoded)
        elif prop.kind == BOOLEAN:
            if not all(isinstance(v, bool) for v in values):
                raise SchemaMismatch(f"property {prop.name!r} is true/false for every object")
            bits = np.packbits(np.array(values, dtype=bool), bitorder="little")
            table[prop.ident] = {"values": views.add(bits.tobytes())}
        else:
            numbers = [_number(v, prop) for v in values]
            if any(v is None for v in numbers) and not prop.gaps:
                raise SchemaMismatch(f"property {prop.name!r} has a value for every object")
            if all(v is None for v in numbers):
                table[prop.ident] = views.empty(prop.kind)
                continue
            if prop.kind == INT32 and not all(
                v is None or (isinstance(v, int) and -(2**31) < v < 2**31) for v in numbers
            ):
                raise SchemaMismatch(f"property {prop.name!r} holds whole numbers in the city")
            nodata, dtype = (INT32_NODATA, "<i4") if prop.kind == INT32 else (FLOAT_NODATA, "<f8")
            array = np.array([nodata if v is None else v for v in numbers], dtype=dtype)
            table[prop.ident] = {"values": views.add(array.tobytes())}
    metadata = {
        "schema": schema.json,
        "propertyTables": [{"class": CLASS, "count": len(rows), "properties": table}],
    }
    return metadata, views.data


def batch_table(
    rows: list[dict[str, Any]], schema: PropertySchema | None = None
) -> dict[str, list[Any]]:
    """A 3D Tiles 1.0 JSON batch table: one array per property some object has, each value of
    the property's type in the schema (text, number or true/false), null where an object lacks
    it.

    Raises:
        SchemaMismatch: a value that the schema's type cannot hold.
    """
    schema = schema or schema_of_rows(rows)
    table: dict[str, list[Any]] = {}
    for prop in schema.properties:
        values = [row.get(prop.name) for row in rows]
        if all(v is None for v in values):
            continue
        if prop.kind == STRING:
            table[prop.name] = [
                v if v is None or isinstance(v, str) else _text(v).decode() for v in values
            ]
        elif prop.kind == BOOLEAN:
            table[prop.name] = values
        elif prop.kind == FLOAT64:
            table[prop.name] = [None if v is None else float(_number(v, prop)) for v in values]
        else:
            table[prop.name] = [_number(v, prop) for v in values]
    return table
