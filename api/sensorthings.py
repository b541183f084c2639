"""OGC SensorThings API 1.1 (Part 1, Sensing) at /v1.1: the eight entity sets with their
navigation, the query options, create/update/delete with deep insert, and the Data Array
extension (`CreateObservations`, `$resultFormat=dataArray`). Errors answer in the standard's
own shape (`{"code", "type": "error", "message"}`), which its clients read.

Reads are public unless `CIM_TWIN_PRIVATE` is set; writes need a twin key (Bearer, X-API-Key,
or HTTP Basic with the key as password, as frost-sta-client sends it).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool

from api.limits import DATA_ARRAY_BODY
from cim import jsonvalues
from cim.errors import CimError, InvalidInput, TooLarge, Unauthorized
from twin import access, read, store
from twin.entities import SETS, VERSION, parse_path
from twin.odata import parse_options

LOG = logging.getLogger("cim.errors")
PREFIX = f"/{VERSION}"
SPEC = "http://www.opengis.net/spec/iot_sensing/1.1/req/"
CONFORMANCE = [
    SPEC + "datamodel",
    SPEC + "resource-path/resource-path-to-entities",
    SPEC + "request-data",
    SPEC + "create-update-delete",
    SPEC + "data-array/data-array",
]
MQTT_CREATE = SPEC + "create-observations-via-mqtt/observations-creation"
MQTT_RECEIVE = SPEC + "receive-updates-via-mqtt/receive-updates"
STATUS = {
    "NotFound": 404,
    "InvalidInput": 400,
    "Forbidden": 403,
    "Unauthorized": 401,
    "TooLarge": 413,
    "Conflict": 409,
    "TooManyAttempts": 429,
    "DatabaseUnavailable": 503,
}


def sta_error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="cim-twin"'} if status == 401 else None
    return JSONResponse(
        {"code": status, "type": "error", "message": message},
        status_code=status,
        headers=headers,
    )


def status_of(exc: CimError) -> int:
    for cls in type(exc).__mro__:
        if cls.__name__ in STATUS:
            return STATUS[cls.__name__]
    return 500


def key_of(request: Request) -> str | None:
    """The twin key a request carries: Bearer, X-API-Key, or Basic's password."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return request.headers.get("x-api-key")


def writer_of(request: Request) -> store.Writer:
    """The writer behind a request's key.

    Raises:
        Unauthorized: no key, or one that is unknown or revoked.
    """
    key = key_of(request)
    if not key:
        raise Unauthorized(
            "writing the twin needs a key (cim twin keys create); send it as "
            "Authorization: Bearer KEY, X-API-Key or HTTP Basic's password"
        )
    writer = access.authenticate(request.app.state.engine, key)
    if writer is None:
        raise Unauthorized("this twin key is unknown or revoked")
    return writer


def caller(request: Request) -> store.Writer:
    """The writer KeyFirst found before the body was read (api.dependencies), or its refusal.

    Raises:
        Unauthorized: as `writer_of`.
    """
    refused = getattr(request.state, "refused", None)
    if refused is not None:
        raise refused
    found = getattr(request.state, "twin_writer", None)
    return found if found is not None else writer_of(request)


def check_reader(request: Request) -> None:
    if not request.app.state.settings.twin_private:
        return
    key = key_of(request)
    if not key or access.authenticate(request.app.state.engine, key) is None:
        raise Unauthorized("the twin's reads are private here: send a twin key")


def base_of(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def sensorthings_router(
    engine: Engine, reads: Engine, mqtt: Callable[[], dict[str, Any]]
) -> APIRouter:
    """The /v1.1 routes over the primary (writes) and `reads`; `mqtt()` gives the broker's
    endpoints for the server settings (empty when no broker is configured)."""
    router = APIRouter(tags=["SensorThings"])
    twin = {"x-twin": True}

    def answer(work: Callable[[], Response]) -> Response:
        try:
            return work()
        except CimError as exc:
            return sta_error(status_of(exc), str(exc))
        except DataError as exc:
            return sta_error(400, str(exc.orig).splitlines()[0] if exc.orig else str(exc))

    @router.get(PREFIX, summary="SensorThings service root: entity sets and server settings")
    def root(request: Request) -> Response:
        check_reader(request)
        base = base_of(request)
        conformance = list(CONFORMANCE)
        settings: dict[str, Any] = {"conformance": conformance}
        endpoints = mqtt()
        if endpoints:
            conformance += [MQTT_CREATE, MQTT_RECEIVE]
            settings[MQTT_CREATE] = {"endpoints": endpoints["create"]}
            settings[MQTT_RECEIVE] = {"endpoints": endpoints["receive"]}
        return JSONResponse(
            {
                "value": [{"name": n, "url": f"{base}{PREFIX}/{n}"} for n in SETS],
                "serverSettings": settings,
            }
        )

    @router.get(
        PREFIX + "/{path:path}",
        summary="Read entities, collections and properties",
        responses={204: {"description": "A property that is null or absent"}},
    )
    def get(request: Request, path: str) -> Response:
        def work() -> Response:
            if not path.strip("/"):
                return root(request)
            check_reader(request)
            resource = parse_path(path)
            params = dict(request.query_params)
            options = parse_options(params)
            base = base_of(request)
            with reads.connect() as conn:
                if resource.is_collection and not resource.ref:
                    if options.result_format == "dataArray":
                        rows = read.read_data_array(
                            conn, resource, options, base, request.url.query
                        )
                        return Response(rows, media_type="application/json")
                    page = read.read_collection(conn, resource, options, base, request.url.query)
                    out: dict[str, Any] = {}
                    if page.count is not None:
                        out["@iot.count"] = page.count
                    out["value"] = page.value
                    if page.next_link:
                        out["@iot.nextLink"] = page.next_link
                    return _json(out)
                if resource.ref:
                    if resource.is_collection:
                        page = read.read_collection(
                            conn, resource, options, base, request.url.query
                        )
                        return _json(
                            {"value": [{"@iot.selfLink": e["@iot.selfLink"]} for e in page.value]}
                        )
                    entity = read.read_entity(conn, resource, options, base)
                    return _json({"@iot.selfLink": entity["@iot.selfLink"]})
                entity = read.read_entity(
                    conn, resource, options if resource.member is None else parse_options({}), base
                )
            if resource.member is not None:
                name = "@iot.id" if resource.member == "id" else resource.member
                if name not in entity:
                    return Response(status_code=204)
                value = entity[name]
                if resource.value:
                    if value is None:
                        return Response(status_code=204)
                    body = value if isinstance(value, str) else jsonvalues.dumps(value).decode()
                    return Response(body, media_type="text/plain; charset=utf-8")
                return _json({resource.member: value})
            return _json(entity)

        return answer(work)

    @router.post(
        PREFIX + "/{path:path}",
        status_code=201,
        summary="Create an entity (deep insert), or "
        "Observations from a Data Array (CreateObservations)",
        openapi_extra=twin,
    )
    async def post(request: Request, path: str) -> Response:
        try:
            writer = caller(request)
            body = await _body(request)
        except CimError as exc:
            return sta_error(status_of(exc), str(exc))

        def work() -> Response:
            base = base_of(request)
            if path.strip("/") == "CreateObservations":
                rows, errors = store.create_data_array(engine, body, writer)
                request.app.state.twin_notify([r for r in rows if r is not None])
                links = [
                    "error" if r is None else f"{base}{PREFIX}/Observations({r.id})" for r in rows
                ]
                headers = {}
                if errors:  # the standard answers "error"; the reasons, for people, beside it
                    first = sorted(errors.items())[:5]
                    headers["X-Row-Errors"] = (
                        "; ".join(m for _, m in first)
                        .encode("ascii", "backslashreplace")
                        .decode()[:2000]
                    )
                return _json(links, 201, headers)
            resource = parse_path(path)
            if not resource.is_collection or resource.ref:
                raise InvalidInput(
                    "POST goes to a collection, e.g. /v1.1/Things or "
                    "/v1.1/Datastreams(1)/Observations"
                )
            created = store.create(engine, resource, body, writer)
            if created.set.name in ("Things", "Datastreams", "Sensors", "ObservedProperties"):
                request.app.state.twin_access_changed()  # a device may publish to new ones
            request.app.state.twin_notify(created)
            link = f"{base}{PREFIX}/{created.set.name}({created.id})"
            with reads.connect() as conn:
                entity = read.read_entity(
                    conn,
                    parse_path(f"{created.set.name}({created.id})"),
                    parse_options({}),
                    base,
                )
            return _json(entity, 201, {"Location": link})

        return await run_in_threadpool(answer, work)

    async def change(request: Request, path: str, mode: str) -> Response:
        try:
            writer = caller(request)
            body = await _body(request)
        except CimError as exc:
            return sta_error(status_of(exc), str(exc))

        def work() -> Response:
            resource = parse_path(path)
            ident = store.update(engine, resource, body, writer, mode)
            request.app.state.twin_notify(store.Created(resource.last.set, ident))
            with reads.connect() as conn:
                entity = read.read_entity(
                    conn,
                    parse_path(f"{resource.last.set.name}({ident})"),
                    parse_options({}),
                    base_of(request),
                )
            return _json(entity)

        return await run_in_threadpool(answer, work)

    @router.patch(
        PREFIX + "/{path:path}",
        summary="Change some properties (or JSON Patch)",
        openapi_extra=twin,
    )
    async def patch(request: Request, path: str) -> Response:
        ctype = request.headers.get("content-type", "")
        return await change(request, path, "patch" if "json-patch" in ctype else "merge")

    @router.put(
        PREFIX + "/{path:path}", summary="Replace an entity's properties", openapi_extra=twin
    )
    async def put(request: Request, path: str) -> Response:
        return await change(request, path, "replace")

    @router.delete(PREFIX + "/{path:path}", summary="Delete an entity", openapi_extra=twin)
    async def delete(request: Request, path: str) -> Response:
        def work() -> Response:
            writer = caller(request)
            resource = parse_path(path)
            store.delete(engine, resource, writer)
            if resource.last.set.name in ("Things", "Datastreams", "Sensors", "ObservedProperties"):
                request.app.state.twin_access_changed()
            return Response(status_code=200)

        return await run_in_threadpool(answer, work)

    return router


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise InvalidInput("the request has no body; send JSON")
    if len(raw) > DATA_ARRAY_BODY:
        raise TooLarge(f"the body has {len(raw)} bytes; at most {DATA_ARRAY_BODY}")
    try:
        return jsonvalues.loads(raw)
    except jsonvalues.JSONDecodeError as e:
        raise InvalidInput(f"the body is not JSON: {e}") from None


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        jsonvalues.dumps(value), status_code=status, media_type="application/json", headers=headers
    )
