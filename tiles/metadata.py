"""Property tables (EXT_structural_metadata) from city objects: a class per tile whose properties
are CIM's own (id, source id, type, dataset) and every attribute, each with the type its values
have. Pure: rows in, schema and binary buffers out."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson

CLASS = "cityobject"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INT32_NODATA = -2147483648
FLOAT_NODATA = -3.4028234663852886e38


def _identifier(name: str, taken: set[str]) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not ident or not _IDENT.match(ident):
        ident = "a_" + ident
    base, n = ident, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    taken.add(ident)
    return ident


_NONE = type(None)


def _kind(values: list[Any]) -> str:
    """The metadata type that holds every value of a column (STRING when nothing narrower)."""
    types = set(map(type, values))
    present = types - {_NONE}
    if present == {bool} and _NONE not in types:
        return "BOOLEAN"
    if present == {int}:
        numbers = [v for v in values if v is not None]
        return "INT32" if -(2**31) < min(numbers) and max(numbers) < 2**31 else "FLOAT64"
    if present and present <= {int, float}:
        return "FLOAT64"
    return "STRING"


def _strings(values: list[Any]) -> tuple[bytes, bytes]:
    if set(map(type, values)) == {str}:
        encoded = [v.encode() for v in values]
    else:
        encoded = [
            b"" if v is None else v.encode() if isinstance(v, str) else orjson.dumps(v)
            for v in values
        ]
    offsets = np.zeros(len(encoded) + 1, dtype="<u4")
    np.cumsum(list(map(len, encoded)), out=offsets[1:])
    # a buffer view may not be empty: all-empty strings still get one (unreferenced) byte
    return b"".join(encoded) or b" ", offsets.tobytes()


def property_table(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[bytes]]:
    """The EXT_structural_metadata object for `rows` (one per feature, in feature-id order) and
    the buffer-view contents its table refers to by index."""
    order = dict.fromkeys(k for row in rows[:1] for k in row)  # CIM's own columns first
    order.update(dict.fromkeys(sorted(set().union(*rows) - set(order))))
    columns = {key: [row.get(key) for row in rows] for key in order}
    taken: set[str] = set()
    schema_props: dict[str, Any] = {}
    table_props: dict[str, Any] = {}
    views: list[bytes] = []
    for key, values in columns.items():
        ident = _identifier(key, taken)
        kind = _kind(values)
        prop: dict[str, Any] = {"name": key}
        missing = any(v is None for v in values)
        if kind == "STRING":
            prop["type"] = "STRING"
            data, offsets = _strings(values)
            views += [data, offsets]
            table_props[ident] = {
                "values": len(views) - 2,
                "stringOffsets": len(views) - 1,
                "stringOffsetType": "UINT32",
            }
            if missing:
                prop.update(required=False, noData="")
        elif kind == "BOOLEAN":
            prop["type"] = "BOOLEAN"
            bits = np.packbits(np.array(values, dtype=bool), bitorder="little")
            views.append(bits.tobytes())
            table_props[ident] = {"values": len(views) - 1}
        else:
            prop.update(type="SCALAR", componentType=kind)
            nodata = INT32_NODATA if kind == "INT32" else FLOAT_NODATA
            dtype = "<i4" if kind == "INT32" else "<f8"
            array = np.array([nodata if v is None else v for v in values], dtype=dtype)
            views.append(array.tobytes())
            table_props[ident] = {"values": len(views) - 1}
            if missing:
                prop.update(required=False, noData=nodata)
        schema_props[ident] = prop
    metadata = {
        "schema": {
            "id": "cim",
            "classes": {CLASS: {"name": "City object", "properties": schema_props}},
        },
        "propertyTables": [{"class": CLASS, "count": len(rows), "properties": table_props}],
    }
    return metadata, views
