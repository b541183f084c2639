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


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
_REASONS = {
    "400": "The request is not valid (parameters, body or file)",
    "401": "No API key, or one that is not valid",
    "403": "The key's role is too weak for this",
    "404": "No such thing",
    "409": "The change clashes with the state of what it changes",
    "413": "The upload is over the size limit",
    "429": "Too many failed authentications from this address (see Retry-After)",
    "500": "An unexpected error (logged by the server)",
    "503": (
        "The database cannot be reached; or, for a heavy request (a feature page of more than "
        "1,000 objects, a report, a what-if), every heavy slot stayed taken: retry after the "
        "seconds Retry-After says"
    ),
}


_REF = "#/components/schemas/"
STA_ERROR_SCHEMA = {
    "type": "object",
    "description": "An error as OGC SensorThings API answers it",
    "required": ["code", "type", "message"],
    "properties": {
        "code": {"type": "integer"},
        "type": {"type": "string"},
        "message": {"type": "string"},
    },
}


def _problems(doc: dict[str, Any]) -> None:
    """Declare the problem+json responses every operation can give (validation errors are
    answered 400, not FastAPI's 422): 400/404/500/503 everywhere, 401/403/429 where a key may
    be checked, 409/413 where something is written."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["SensorThingsError"] = STA_ERROR_SCHEMA
    for path, item in doc.get("paths", {}).items():
        sensorthings = path.startswith("/v1.1")  # its errors in its own shape, its keys its own
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            codes = ["400", "404", "500", "503"]
            if "security" in op or sensorthings:
                codes += ["401", "403", "429"]
            if method in ("post", "put", "patch", "delete"):
                codes += ["409", "413"]
            responses = op["responses"]
            responses.pop("422", None)
            content = {"application/problem+json": {"schema": {"$ref": _REF + "Problem"}}}
            if sensorthings:  # (a URL the service refuses before its routes: a problem)
                content["application/json"] = {"schema": {"$ref": _REF + "SensorThingsError"}}
            for code in codes:
                responses.setdefault(code, {"description": _REASONS[code], "content": content})


def _optional_reads(doc: dict[str, Any]) -> None:
    """Reads that answer without a key (public grading reads) also list the empty security
    requirement: a key is checked when given, not needed."""
    for item in doc.get("paths", {}).values():
        for method, op in item.items():
            if not isinstance(op, dict) or "security" not in op:
                continue
            if method == "get" or op.get("x-read-only"):
                if {} not in op["security"]:
                    op["security"].append({})


def openapi_30(app: FastAPI, public_reads: bool = True) -> dict[str, Any]:
    """The app's OpenAPI document, in 3.0.3 form."""
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    doc = _downgrade(doc)
    doc["openapi"] = "3.0.3"
    _problems(doc)
    if public_reads:
        _optional_reads(doc)
    return doc
