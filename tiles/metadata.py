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


def _kind(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return "BOOLEAN"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if all(-(2**31) < v < 2**31 for v in present):
            return "INT32"
        return "FLOAT64"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "FLOAT64"
    return "STRING"


def _strings(values: list[Any]) -> tuple[bytes, bytes]:
    encoded = [
        b"" if v is None else v.encode() if isinstance(v, str) else orjson.dumps(v) for v in values
    ]
    offsets = np.zeros(len(encoded) + 1, dtype="<u4")
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    # a buffer view may not be empty: all-empty strings still get one (unreferenced) byte
    return b"".join(encoded) or b" ", offsets.tobytes()


def property_table(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[bytes]]:
    """The EXT_structural_metadata object for `rows` (one per feature, in feature-id order) and
    the buffer-view contents its table refers to by index."""
    columns: dict[str, list[Any]] = {}
    for n, row in enumerate(rows):
        for key, value in row.items():
            columns.setdefault(key, [None] * len(rows))[n] = value
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
