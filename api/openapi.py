"""The service description as OpenAPI 3.0 (OGC API Features asks for 3.0; FastAPI writes 3.1)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi


def _downgrade(node: Any) -> Any:
    """Rewrite the 3.1-only JSON Schema forms FastAPI emits into their 3.0 equivalents."""
    if isinstance(node, list):
        return [_downgrade(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _downgrade(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1:
                out.update(rest[0])
            else:
                out[key] = rest
            out["nullable"] = True
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out[bound], bool):
            out[plain] = out[bound]
            out[bound] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list) and "paths" not in out:
        examples = out.pop("examples")
        if examples and "type" in out:
            out["example"] = examples[0]
    if "contentMediaType" in out:
        out.pop("contentMediaType")
    return out


def openapi_30(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, in 3.0.3 form."""
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    doc = _downgrade(doc)
    doc["openapi"] = "3.0.3"
    return doc
