"""CityGML property values as plain JSON: typed text, and nested objects for structured content.

A property's schema type is not known here (ADEs bring their own), so a leaf is read by what its
element says: a code (a `codeSpace`, or one of CityGML's code properties such as `function`)
stays text, a measure (a `uom`) becomes a number, and other text becomes a number only when it
is written as a number is, so that nothing of it is lost: "011", "+49 30" and "1179" as a
`function` stay text. Generic attributes say their type and are read by it (`generics`)."""

from __future__ import annotations

import math
import re
from typing import Any

from ingest.gml import XLINK_HREF, child_elements, gml_id, local

NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")
EXACT_INT = 2**53  # beyond this an int is not exact in a double (what JSON readers use)
# CityGML properties whose values are codes (gml:CodeType) even where no codeSpace is given:
# "1179" as a building function is a code from a list, not a quantity
CODE_PROPERTIES = {
    "class",
    "function",
    "usage",
    "roofType",
    "surfaceMaterial",
    "species",
    "waterLevel",
    "highReference",
    "lowReference",
}


def number(text: str) -> Any:
    """Text as an int, float or bool when it is written as one and reads back the same
    (JSON-safe), else the text, stripped: a leading zero or plus sign, or more digits than a
    double holds, keep it text."""
    t = text.strip()
    if (t[:1].isdigit() or t[:1] in ("-", ".")) and t.isascii():
        digits = t.lstrip("-")
        if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            return t  # "011", "-007": a code or a number written with padding
        if INTEGER.match(t):
            n = int(t)
            return n if abs(n) < EXACT_INT else t  # beyond exact doubles: keep every digit
        if NUMBER.match(t) and math.isfinite(value := float(t)):
            return value
    elif t in ("true", "false"):
        return t == "true"
    return t


def leaf_value(el: Any) -> Any:
    """A property without child elements: a code as its text, a measure as its number, other
    text by `number`."""
    text = el.text or ""
    if el.get("codeSpace") is not None or local(el.tag) in CODE_PROPERTIES:
        return text.strip()
    if el.get("uom") is not None and (value := finite(text)) is not None:
        return value  # a measure is a double, whatever its spelling
    return number(text)


def finite(text: str) -> float | None:
    """Text written as a number (xs:double without INF and NaN, which JSON lacks), as a float."""
    t = text.strip()
    if not NUMBER.match(t):
        return None
    value = float(t)
    return value if math.isfinite(value) else None


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
        return leaf_value(el)
    out: dict[str, Any] = {}
    for k in kids:
        add_attribute(out, local(k.tag), property_value(k))
    if len(out) == 1 and len(kids) == 1 and gml_id(kids[0]) is None:
        # <con:height><con:Height>...</con:Height></con:height>: drop the type wrapper
        only = next(iter(out.values()))
        if isinstance(only, dict) and local(kids[0].tag)[:1].isupper():
            return only
    return out


def address(prop: Any) -> dict[str, Any]:
    """An address as the xAL leaves it names (LocalityName, ThoroughfareName, ...), as text."""
    out: dict[str, Any] = {}
    for e in prop.iter():
        if isinstance(e.tag, str) and not child_elements(e) and (e.text or "").strip():
            key = local(e.tag)
            if e.get("Type"):
                key = f"{key}.{e.get('Type')}"
            add_attribute(out, key, (e.text or "").strip())
    return out
