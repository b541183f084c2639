"""CityGML generic attributes as {name: typed value}, on city objects and on their boundary
surfaces alike.

The element says the type, and the type alone decides the value, never how the text looks:
"09563000" in a string attribute stays that text, so that a filter on it finds it.

| element (1.0/2.0 with a `name` attribute; 3.0 with `gen:name`) | stored as |
|---|---|
| stringAttribute / StringAttribute | the text, exactly (xs:string keeps its spaces) |
| intAttribute / IntAttribute | an int (text beyond 2^53 stays text: JSON readers round it) |
| doubleAttribute / DoubleAttribute | a float |
| dateAttribute, uriAttribute (and 3.0's) | the text, trimmed |
| measureAttribute / MeasureAttribute | {"value": float, "uom": unit} |
| 3.0 CodeAttribute | the text; {"value": text, "codeSpace": uri} when it names one |
| genericAttributeSet / GenericAttributeSet | {member name: typed value, ...} |

A value that does not fit its type (an int attribute holding "n/a") is kept as its text and
counted for the ingest report; so is a set's codeSpace, which has no place in the set's object.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ingest.citygml.values import EXACT_INT, INTEGER, add_attribute, finite, property_value
from ingest.gml import child_elements, local

_EXAMPLES = 3  # misfits named in the report


@lru_cache(maxsize=256)
def _kind(tag: str) -> str:
    """'string', 'int', ..., 'set', from a generic attribute's local name in any version."""
    if tag.lower().endswith("attributeset"):
        return "set"
    return tag[:1].lower() + tag[1:].removesuffix("Attribute")


class GenericAttributes:
    """Reads generic attributes into an attributes dict, counting what did not fit its type."""

    def __init__(self) -> None:
        self.misfits = 0  # values kept as text because they are not of their attribute's type
        self.examples: list[str] = []
        self.set_code_spaces = 0  # sets whose codeSpace is not kept

    def read(self, el: Any, into: dict[str, Any]) -> None:
        """Add generic attribute `el` (or the attributes of a 3.0 `genericAttribute` property
        holding them) to `into`, under its name."""
        tag = local(el.tag)
        name = el.get("name")
        only = el[0] if len(el) == 1 else None
        if name and only is not None and isinstance(only.tag, str) and only.tag.endswith("}value"):
            add_attribute(into, name, self._typed(_kind(tag), only, name))  # 1.0/2.0's form
            return
        kids = child_elements(el)
        if tag == "genericAttribute":  # 3.0: a property around one attribute
            for k in kids:
                self.read(k, into)
            return
        kind = _kind(tag)
        if name is None:
            named = next((k for k in kids if local(k.tag) == "name"), None)
            name = (named.text or "").strip() if named is not None else None
        if kind == "set":
            members: dict[str, Any] = {}
            for k in kids:
                if local(k.tag) not in ("name", "codeSpace"):
                    self.read(k, members)
            if el.get("codeSpace") or any(local(k.tag) == "codeSpace" for k in kids):
                self.set_code_spaces += 1
            add_attribute(into, name or tag, members)
            return
        value = next((k for k in kids if local(k.tag) == "value"), None)
        if not name:  # not a generic attribute this reader knows: kept whole, as JSON
            add_attribute(into, tag, property_value(el))
        elif value is None:
            add_attribute(into, name, None)
        else:
            add_attribute(into, name, self._typed(kind, value, name))

    def _typed(self, kind: str, el: Any, name: str) -> Any:
        """The value element `el` of a `kind` attribute as JSON."""
        text = "".join(el.itertext()) if len(el) else el.text or ""
        if kind == "string":
            return text
        if kind in ("date", "uri"):
            return text.strip()
        if kind == "code":
            space = el.get("codeSpace")
            return {"value": text, "codeSpace": space} if space else text
        if kind == "int":
            t = text.strip()
            if INTEGER.match(t) and abs(n := int(t)) < EXACT_INT:
                return n
            return self._misfit(name, kind, text)
        if kind in ("double", "measure"):
            number = finite(text)
            if number is None:
                return self._misfit(name, kind, text)
            if kind == "double":
                return number
            uom = el.get("uom")
            return {"value": number, "uom": uom} if uom else {"value": number}
        return property_value(el)  # a kind from outside the standard: read by its text

    def _misfit(self, name: str, kind: str, text: str) -> str:
        """`text`, kept, and counted as not of its attribute's type."""
        self.misfits += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(f"{name!r} ({kind}): {text[:40]!r}")
        return text

    def warnings(self) -> list[str]:
        """What the ingest report says about the document's generic attributes."""
        out = []
        if self.misfits:
            out.append(
                f"{self.misfits} generic attribute values cannot be stored as their type (not "
                "a number of that type, or an int beyond 2^53 that JSON readers would round): "
                f"kept as text (e.g. {', '.join(self.examples)})"
            )
        if self.set_code_spaces:
            out.append(
                f"{self.set_code_spaces} generic attribute sets name a codeSpace: their members "
                "are kept, the codeSpace is not"
            )
        return out
