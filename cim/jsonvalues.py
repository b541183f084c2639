"""JSON text to Python values, fast and exact.

orjson reads JSON five times faster than the standard library, but it turns an integer beyond
64 bits into a float without a word (`18446744073709551616` becomes `1.8446744073709552e+19`),
and an attribute or a result that changes on its way through CIM is a value lost. `loads` uses
orjson unless the text has a run of 19 digits or more (every integer with fewer fits 64 bits),
and the standard library then; `dumps` writes what orjson refuses (such an integer) with the
standard library.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import orjson

_LONG_NUMBER = re.compile(rb"\d{19}")
JSONDecodeError = json.JSONDecodeError  # orjson's own is a subclass of it


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """The value of a JSON text, every integer exact.

    Raises:
        JSONDecodeError: not JSON.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_NUMBER.search(raw):
        return json.loads(raw)
    return orjson.loads(raw)


def _plain(value: Any) -> Any:
    """What the standard library cannot write itself, as orjson writes it."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """A value as compact JSON (UTF-8), every integer exact: orjson, and the standard library
    for an integer beyond 64 bits, which orjson refuses.

    Raises:
        TypeError: a value JSON cannot hold.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain
        ).encode()
