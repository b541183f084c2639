"""CityGML property values as plain JSON: typed text, and nested objects for structured content."""

from __future__ import annotations

import re
from typing import Any

from ingest.gml import XLINK_HREF, child_elements, gml_id, local

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def number(text: str) -> Any:
    """Text as an int, float or bool when it is one (JSON-safe), else the text."""
    t = text.strip()
    if (t[:1].isdigit() or t[:1] in ("-", "+", ".")) and t.isascii():
        if t.lstrip("+-").isdigit():
            n = int(t)
            return n if abs(n) < 2**53 else t  # beyond exact doubles: keep every digit
        if _NUMBER.match(t):
            return float(t)
    elif t in ("true", "false"):
        return t == "true"
    return t


def add_attribute(attributes: dict[str, Any], key: str, value: Any) -> None:
    """Set an attribute; a repeated property becomes a list."""
    if key in attributes:
        have = attributes[key]
        attributes[key] = [*have, value] if isinstance(have, list) else [have, value]
    else:
        attributes[key] = value


def property_value(el: Any) -> Any:
    """A property as plain JSON: typed text, or nested objects for structured content."""
    kids = child_elements(el)
    if not kids:
        href = el.get(XLINK_HREF)
        if href and not (el.text or "").strip():
            return {"href": href}
        return number(el.text or "")
    out: dict[str, Any] = {}
    for k in kids:
        add_attribute(out, local(k.tag), property_value(k))
    if len(out) == 1 and len(kids) == 1 and gml_id(kids[0]) is None:
        # <con:height><con:Height>...</con:Height></con:height>: drop the type wrapper
        only = next(iter(out.values()))
        if isinstance(only, dict) and local(kids[0].tag)[:1].isupper():
            return only
    return out
