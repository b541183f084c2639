"""One status table: CIM's exceptions as RFC 9457 `application/problem+json` responses."""

from __future__ import annotations

import json
import logging
import re
import traceback
from http import HTTPStatus
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from cim.errors import (
    CimError,
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    InvalidRows,
    NotFound,
    TooLarge,
    TooManyAttempts,
    Unauthorized,
)

PROBLEM = "application/problem+json"
LOG = logging.getLogger("cim.errors")
STATUS: dict[type[CimError], int] = {
    NotFound: 404,
    InvalidInput: 400,
    Forbidden: 403,
    Unauthorized: 401,
    Conflict: 409,
    TooLarge: 413,
    TooManyAttempts: 429,
    DatabaseUnavailable: 503,
    CimError: 500,
}


def problem(
    status: int,
    detail: str,
    instance: str | None = None,
    retry_after: int | None = None,
    errors: list[str] | None = None,
) -> JSONResponse:
    """A problem+json response (`errors`: each problem of an input, when there are several)."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    headers = {"WWW-Authenticate": 'Bearer realm="cim"'} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def status_of(exc: CimError) -> int:
    """The HTTP status for a CIM exception (most specific class wins)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into problems."""

    @app.exception_handler(CimError)
    async def cim_error(request: Request, exc: CimError) -> JSONResponse:
        retry = exc.retry_after if isinstance(exc, TooManyAttempts) else None
        errors = exc.problems if isinstance(exc, InvalidRows) else None
        record = getattr(request.app.state, "record_refusal", None)
        if record is not None:  # refused attempts are kept where the app wants them
            await run_in_threadpool(record, request, status_of(exc), str(exc))
        return problem(status_of(exc), str(exc), request.url.path, retry, errors)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {err.get('msg')}")
        return problem(400, "; ".join(parts), request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        response = problem(exc.status_code, str(exc.detail), request.url.path)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of every route at this path, not the first's
            methods = {
                m
                for c in iter_route_contexts(app.routes)
                if isinstance(c.route, APIRoute) and c.route.path_regex.match(request.url.path)
                for m in (c.methods or ())
            }
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    @app.exception_handler(DataError)
    async def unusable_value(request: Request, exc: DataError) -> JSONResponse:
        # a backstop: inputs are checked before they reach the database (no NUL, bounded
        # numbers), but a value the database still refuses is the request's, not a fault
        why = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        LOG.warning(
            json.dumps({"event": "refused", "path": request.url.path, "error": type(exc).__name__})
        )
        return problem(400, f"a value of the request cannot be used: {why}", request.url.path)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # the client left (or was cut off for sending too slowly): nobody reads the answer
        return problem(400, "the client disconnected", request.url.path)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        hidden = _query_values(request)
        LOG.error(
            json.dumps(
                {
                    "event": "error",
                    "path": request.url.path,
                    "error": scrubbed(f"{type(exc).__name__}: {exc}", hidden),
                    "traceback": scrubbed("".join(traceback.format_exception(exc)), hidden),
                },
                ensure_ascii=False,
            )
        )
        return problem(500, "internal error; see the server log", request.url.path)


# SQLAlchemy puts a statement's bound values into its errors' text
_PARAMETERS = re.compile(r"^\[parameters: .*$", re.MULTILINE)
HIDDEN = "[hidden]"
MIN_HIDDEN = 4  # shorter values are no secret, and hiding them would garble the traceback


def _query_values(request: Request) -> list[str]:
    """The query string's values (and its names without a value), as sent and as decoded."""
    raw = request.scope.get("query_string", b"").decode("latin-1")
    found = {raw} | set(raw.split("&"))
    for name, value in parse_qsl(raw, keep_blank_values=True):
        found |= {value, repr(value)[1:-1]} if value else {name, repr(name)[1:-1]}
    return sorted((v for v in found if len(v) >= MIN_HIDDEN), key=len, reverse=True)


def scrubbed(text: str, hidden: list[str]) -> str:
    """A log text without a query string's values (`hidden`, longest first) nor the values
    SQLAlchemy bound to a statement: the README promises no query string reaches the log."""
    text = _PARAMETERS.sub(f"[parameters: {HIDDEN}]", text)
    for value in hidden:
        text = text.replace(value, HIDDEN)
    return text
