"""Property tables (EXT_structural_metadata) and 3D Tiles 1.0 batch tables of a tile's objects,
by their city's schema (tiles.properties).

Each property of the class is in every tile's table (the official validator wants them all,
required or not). A missing or empty text is written as the noData value "\\u0000", so no text
column is ever zero bytes long (a buffer view may not be empty); the columns of a tile in which
a property has no value at all share one buffer view of noData values per type. Pure: rows in,
JSON and bytes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

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
    "column_batch_table",
    "column_table",
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


_NUMBERS = frozenset({int, float})
_NONE = type(None)


def _texts(values: list[Any]) -> list[bytes]:
    """The encoded values of a text column (as `_text` gives each; text alone, the common case,
    in one pass)."""
    if set(map(type, values)) == {str} and "" not in values:
        return list(map(str.encode, values))
    return [_text(v) for v in values]


def _numbers(values: list[Any], prop: Property) -> NDArray[Any] | None:
    """A number column as its array (noData for no value), or None when no object has one.

    Raises:
        SchemaMismatch: a value that is not a number, a gap in a property without gaps, or a
            fraction or a too large number in a whole-number property.
    """
    types = set(map(type, values))
    if not types <= _NUMBERS | {_NONE}:
        for value in values:
            _number(value, prop)  # raises, naming the first value that is not a number
    if _NONE in types:
        if not prop.gaps:
            raise SchemaMismatch(f"property {prop.name!r} has a value for every object")
        if types == {_NONE}:
            return None
    if prop.kind == INT32:
        present = [v for v in values if v is not None] if _NONE in types else values
        whole = float not in types and (
            not present or (-(2**31) < min(present) and max(present) < 2**31)
        )
        if not whole:
            raise SchemaMismatch(f"property {prop.name!r} holds whole numbers in the city")
    nodata, dtype = (INT32_NODATA, "<i4") if prop.kind == INT32 else (FLOAT_NODATA, "<f8")
    if _NONE in types:
        values = [nodata if v is None else v for v in values]
    return np.array(values, dtype=dtype)


def _rows_to_columns(rows: list[dict[str, Any]], schema: PropertySchema) -> dict[str, list[Any]]:
    return {prop.name: [row.get(prop.name) for row in rows] for prop in schema.properties}


def property_table(
    rows: list[dict[str, Any]], schema: PropertySchema | None = None
) -> tuple[dict[str, Any], list[bytes]]:
    """The EXT_structural_metadata object for `rows` (one per feature, in feature-id order,
    values by property name) and the buffer-view contents its table refers to by index.

    Raises:
        SchemaMismatch: a value that the schema's type cannot hold.
    """
    schema = schema or schema_of_rows(rows)
    return column_table(_rows_to_columns(rows, schema), len(rows), schema)


def column_table(
    columns: Mapping[str, list[Any]], count: int, schema: PropertySchema
) -> tuple[dict[str, Any], list[bytes]]:
    """Like `property_table`, of `count` features given column by column (values by property
    name; a property with no column has no value).

    Raises:
        SchemaMismatch: a value that the schema's type cannot hold.
    """
    table: dict[str, Any] = {}
    views = _Views(count)
    for prop in schema.properties:
        values = columns.get(prop.name)
        if values is None:
            values = [None] * count
        if prop.kind == STRING:
            encoded = _texts(values)
            empty = encoded.count(_TEXT_NODATA) == count
            table[prop.ident] = views.empty(STRING) if empty else views.text(encoded)
        elif prop.kind == BOOLEAN:
            if set(map(type, values)) != {bool}:
                raise SchemaMismatch(f"property {prop.name!r} is true/false for every object")
            bits = np.packbits(np.array(values, dtype=bool), bitorder="little")
            table[prop.ident] = {"values": views.add(bits.tobytes())}
        else:
            array = _numbers(values, prop)
            table[prop.ident] = (
                views.empty(prop.kind) if array is None else {"values": views.add(array.tobytes())}
            )
    metadata = {
        "schema": schema.json,
        "propertyTables": [{"class": CLASS, "count": count, "properties": table}],
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
    return column_batch_table(_rows_to_columns(rows, schema), schema)


def column_batch_table(
    columns: Mapping[str, list[Any]], schema: PropertySchema
) -> dict[str, list[Any]]:
    """Like `batch_table`, of features given column by column (as `column_table` takes them).

    Raises:
        SchemaMismatch: a value that the schema's type cannot hold.
    """
    table: dict[str, list[Any]] = {}
    for prop in schema.properties:
        values = columns.get(prop.name)
        if values is None or all(v is None for v in values):
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
