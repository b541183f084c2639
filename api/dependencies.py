"""What routes share, as FastAPI dependencies: the app's database engine, settings, grading
results cache and rendered reports (all on `app.state`, one set per app); who the caller is (API
keys, roles, the limit on failed authentications, checked before a write's body is read); the
slots of heavy requests; uploaded files; and the query parameters of the Features API.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.limits import FailureLimiter, HeavyGate, RefusalSampler
from api.sensorthings import writer_of
from cim.errors import TooLarge, Unauthorized
from cim.settings import ApiSettings
from grading import access, evidence, rounds
from grading.access import Actor
from grading.outcome import ResultsCache
from grading.results import canonical_json

LOG = logging.getLogger("cim.errors")
ANONYMOUS = Actor("anonymous", "viewer")
AUDITED = (401, 403, 409)


def record_refusal(request: Request, status: int, detail: str) -> None:
    """A refused grading request (401, 403, 409) into the audit log, naming its caller. Every
    refusal of a key's holder is written; those of callers without a valid key are sampled per
    address (`RefusalSampler`): a row for each of the first few a minute, then a count."""
    if status not in AUDITED or not request.url.path.startswith("/grading"):
        return
    actor = getattr(request.state, "actor", None)
    unwritten = 0
    if actor is None:  # no valid key
        actor = ANONYMOUS
        client = request.client.host if request.client else "unknown"
        sampled = request.app.state.refusals.admit(client)
        if sampled is None:
            return
        unwritten = sampled
    target = f"{request.method} {request.url.path}"
    round_id = request.path_params.get("round_id")
    try:
        access.record_refusal(
            request.app.state.engine, actor, round_id, target, status, detail, unwritten
        )
    except SQLAlchemyError:  # the refusal stands; the log says the record could not be written
        LOG.exception("refused request not audited: %s", target)


def share_state(app: FastAPI, settings: ApiSettings) -> None:
    """Keep on `app.state` what the dependencies below read besides the engine: the settings,
    the count of failed authentications and the grading results cache (each app its own)."""
    app.state.settings = settings
    app.state.auth_failures = FailureLimiter(settings.auth_failures, settings.auth_window_s)
    app.state.results_cache = ResultsCache()
    app.state.record_refusal = record_refusal
    app.state.refusals = RefusalSampler()
    app.state.heavy = HeavyGate(settings.heavy_requests, settings.heavy_wait_s)
    app.state.reports = ReportCache(app.state.heavy)


class ReportCache:
    """Rendered round reports (PDF, HTML), by what they show: the same results, round, comparison
    and language give the same bytes, so each is rendered once (7-9 s for a PDF) and kept, the
    `size` most recently used in this process's memory. A render takes a heavy slot (and a PDF
    is rendered in a heavy worker process, see `HeavyGate.run`)."""

    def __init__(self, gate: HeavyGate, size: int = 8) -> None:
        self.gate = gate
        self.size = size
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(**shown: Any) -> str:
        """The key of a report: the SHA-256 of everything it shows, as canonical JSON."""
        return hashlib.sha256(canonical_json(shown)).hexdigest()

    def get(self, key: str) -> bytes | None:
        """A report rendered before, if it is still kept."""
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
            return self._kept.get(key)

    async def made(self, key: str, render: Callable[[], bytes]) -> bytes:
        """The report under `key`, unless it is kept rendered now by `render` (in a worker
        thread, holding a heavy slot, waited for without holding one).

        Raises:
            HTTPException: 503 with Retry-After, when no heavy slot frees in time.
        """
        kept = self.get(key)
        if kept is not None:
            return kept
        await self.gate.enter()
        try:
            kept = self.get(key)  # rendered by another request while this one waited
            if kept is not None:
                return kept
            data = await run_in_threadpool(render)
        finally:
            self.gate.leave()
        with self._lock:
            self._kept[key] = data
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return data


# async: they only read app.state, so they need no worker thread
async def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return request.app.state.engine  # type: ignore[no-any-return]


async def get_read_engine(request: Request) -> Engine:
    """The engine of the app's reads: hot standbys that have replayed every commit so far, or
    the primary (cim.db.replicas); the primary's engine itself when there are no standbys."""
    return getattr(request.app.state, "read_engine", request.app.state.engine)  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ApiSettings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_results_cache(request: Request) -> ResultsCache:
    """The app's cache of grading results."""
    return request.app.state.results_cache  # type: ignore[no-any-return]


async def get_reports(request: Request) -> ReportCache:
    """The app's rendered reports."""
    return request.app.state.reports  # type: ignore[no-any-return]


async def heavy_slot(request: Request) -> AsyncIterator[HeavyGate]:
    """One of the app's slots for heavy work, held until the response is sent (waited for on
    the event loop: no worker thread is held meanwhile); the gate, to `run` the work with.

    Raises:
        HTTPException: 503 with Retry-After, when no slot frees in time.
    """
    gate: HeavyGate = request.app.state.heavy
    await gate.enter()
    try:
        yield gate
    finally:
        gate.leave()


DB = Annotated[Engine, Depends(get_engine)]
ReadDB = Annotated[Engine, Depends(get_read_engine)]  # for routes that only read
Settings = Annotated[ApiSettings, Depends(get_settings)]
Cache = Annotated[ResultsCache, Depends(get_results_cache)]
Reports = Annotated[ReportCache, Depends(get_reports)]
HeavySlot = Annotated[HeavyGate, Depends(heavy_slot)]


# ---------------------------------------------------------------- who is calling
_bearer = HTTPBearer(auto_error=False, description="A CIM grading API key")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A CIM grading API key")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
KeyHeader = Annotated[str | None, Depends(_header)]


def key_in(request: Request) -> str | None:
    """The key the request brings; "" for credentials that are there but empty or not a
    bearer token (refused like a wrong key); None only when it brings none at all."""
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if request.headers.get("x-api-key"):
        return request.headers["x-api-key"]
    if "x-api-key" in request.headers or scheme.lower() == "bearer":
        return ""
    return None  # e.g. Basic credentials of a proxy in front: not ours


async def presented(request: Request, bearer: Bearer, header: KeyHeader) -> str | None:
    """The key the request brings (see `key_in`; the two security schemes are parameters so that
    the API description declares them). A request `KeyFirst` refused before reading its body is
    refused here, by every route that checks a key.

    Raises:
        CimError: the refusal `KeyFirst` found.
    """
    refused = getattr(request.state, "refused", None)
    if refused is not None:
        raise refused
    return key_in(request)


Presented = Annotated[str | None, Depends(presented)]


def authenticated(request: Request, key: str | None) -> Actor:
    """The key's actor; failures are counted per client address, and a client that fails too
    often is refused for a while (429 instead of 401) — but a valid key is always let in: keys
    are 256-bit random, so the limit is not what stops guessing, and others' failures from a
    shared address (a NAT, a proxy) must not lock its key holders out.

    Raises:
        TooManyAttempts: too many failures from this address lately. Unauthorized: no key, or
        one that is not valid.
    """
    known: Actor | None = getattr(request.state, "actor", None)
    if known is not None:  # authenticated already (by KeyFirst), and counted there
        return known
    limiter: FailureLimiter = request.app.state.auth_failures
    client = request.client.host if request.client else "unknown"
    try:
        if key == "":
            raise Unauthorized("the credentials are empty or not a bearer token")
        actor = access.authenticate(request.app.state.engine, key)
        request.state.actor = actor  # named in the audit log if the request is refused
        return actor
    except Unauthorized:
        limiter.check(client)  # refused lately: 429, and this attempt is not counted
        if key is not None:  # a missing key is not a guess
            limiter.failed(client)
        raise


def current_actor(request: Request, key: Presented, settings: Settings) -> Actor | None:
    """The caller of a read: its actor when it brings a key or reads are private
    (`CIM_API_GRADING_PRIVATE`), else None (anyone may read)."""
    if settings.grading_private or key is not None:
        return authenticated(request, key)
    return None


def round_reader(
    request: Request, round_id: str, actor: Reader, settings: Settings, engine: DB
) -> Actor | None:
    """The caller of a read of one round: anyone for a final round; for a round still in
    progress, only a caller with a key (its values, evidence and audit log name people and are
    not settled), unless `CIM_API_GRADING_PUBLIC_DRAFTS` opens them.

    Raises:
        Unauthorized: no key for a round that is not final. NotFound: no such round.
    """
    if actor is None and not settings.grading_public_drafts:
        if rounds.status(engine, round_id) != "final":
            raise Unauthorized(
                f"round {round_id} is not final: until it is, reading it needs an API key"
            )
    return actor


def require_role(role: str) -> Callable[[Request, str | None], Actor]:
    """A dependency: the caller's actor, refused before the operation runs when its role is
    weaker than `role` (finer rules, e.g. an assessor's cities, are the operation's)."""

    def actor(request: Request, key: Presented) -> Actor:
        caller = authenticated(request, key)
        access.require(caller, role)
        return caller

    return actor


Reader = Annotated[Actor | None, Depends(current_actor)]
RoundReader = Annotated[Actor | None, Depends(round_reader)]
# every write needs at least an assessor: a viewer changes nothing
WRITER = access.ROLES[1]
Writer = Annotated[Actor, Depends(require_role(WRITER))]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class KeyFirst:
    """ASGI middleware: the caller of a writing route (POST, PUT, PATCH, DELETE) is checked
    before anything reads the request's body, by the rules its dependencies apply: a key of at
    least an assessor for a write; for a POST marked `x-read-only` (the what-if), the read rules
    of its round. A refused request reaches its route with an empty body and the refusal, which
    its key dependency raises (so it is answered and audited as always), and its connection is
    closed after the answer: the body it brought is never read, whatever its size."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _write_route(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            await run_in_threadpool(_check_caller, request, *found)
        except Exception as exc:  # noqa: BLE001 - any refusal (or failure) is the route's answer
            request.state.refused = exc
            await self.app(scope, _no_body(), _closing(send))
            return
        await self.app(scope, receive, send)


def _write_route(scope: Scope) -> tuple[APIRoute, dict[str, Any]] | None:
    """The route a writing request goes to, with its path parameters (None: not a write, or no
    such route: the router answers as usual)."""
    if scope["method"] not in WRITES:
        return None
    for context in iter_route_contexts(scope["app"].routes):
        if isinstance(context.route, APIRoute):
            match, child = context.matches(scope)
            if match is Match.FULL:
                return context.route, child.get("path_params", {})
    return None


def _check_caller(request: Request, route: APIRoute, params: dict[str, Any]) -> None:
    """What the route's key dependencies will check, checked now (see `KeyFirst`).

    Raises:
        Unauthorized, Forbidden, TooManyAttempts, NotFound: as the route's dependencies would.
    """
    if (route.openapi_extra or {}).get("x-twin"):  # SensorThings writes: a twin key
        request.state.twin_writer = writer_of(request)
        return
    key = key_in(request)
    settings: ApiSettings = request.app.state.settings
    if (route.openapi_extra or {}).get("x-read-only"):
        actor = current_actor(request, key, settings)
        if "round_id" in params:
            round_reader(request, params["round_id"], actor, settings, request.app.state.engine)
        return
    access.require(authenticated(request, key), WRITER)


def _no_body() -> Receive:
    """A request's `receive` that gives an empty body, then says the client has gone."""
    given = False

    async def receive() -> Message:
        nonlocal given
        if given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": b"", "more_body": False}

    return receive


def _closing(send: Send) -> Send:
    """`send` that asks the server to close the connection after the response (the body the
    client still sends is not read, so the connection cannot carry another request)."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"connection", b"close")],
            }
        await send(message)

    return closing


# ---------------------------------------------------------------- uploads
@dataclass(frozen=True)
class Upload:
    """A file sent as the raw request body, under the name its `filename` parameter gives."""

    filename: str
    content: bytes
    media_type: str


def upload(name_pattern: str) -> Callable[..., Awaitable[Upload]]:
    """A dependency: the request body as a file whose `filename` query parameter must match
    `name_pattern`. Listed after the caller's actor, it reads the body only once the key, the
    role and the name have passed.
    """

    # the pattern as a default, not in Annotated: annotations are strings read in module scope
    async def read(request: Request, filename: str = Query(pattern=name_pattern)) -> Upload:
        limit = evidence.MAX_EVIDENCE_BYTES  # looked up now: a lowered limit applies at once
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise TooLarge(f"the upload is larger than the limit of {limit:,} bytes")
        media = request.headers.get("content-type", "application/octet-stream")
        return Upload(filename, bytes(data), media)

    return read


# ---------------------------------------------------------------- Features API query parameters
CrsParam = Annotated[str | None, Query(description="CRS of the response geometries")]
ScenarioParam = Annotated[
    str | None,
    Query(
        description="a design scheme of the city (方案): the city as it has it — the baseline's "
        "objects less those the scheme replaces, and the scheme's (listed in the collection's "
        "links); unset: the baseline"
    ),
]


@dataclass(frozen=True)
class ItemsQuery:
    """The query parameters of a collection's items, as given (limit clamped to the most)."""

    limit: int
    offset: int
    bbox: str | None
    bbox_crs: str | None
    crs: str | None
    type: str | None
    dataset: str | None
    datetime: str | None
    scenario: str | None = None


def items_query(settings: ApiSettings) -> Callable[..., AsyncIterator[ItemsQuery]]:
    """The dependency that reads an items request's query parameters (the page size's default
    and limit are the app's settings, and so part of its API description). A page of more than
    `settings.heavy_page` objects holds a heavy slot until it is sent."""

    async def query(  # async: it only reads the parameters, so it needs no worker thread
        request: Request,
        limit: int = Query(
            settings.default_limit,
            ge=1,
            description=f"page size (at most {settings.max_limit}; a larger one is cut to it)",
            # in the parameter's schema, where OGC API Features puts it and clients look, but
            # not enforced: a larger limit is cut to it, as the standard allows
            json_schema_extra={"maximum": settings.max_limit},
        ),
        offset: int = Query(0, ge=0, le=settings.max_offset),
        bbox: str | None = Query(None, description="minx,miny,maxx,maxy (in bbox-crs)"),
        bbox_crs: str | None = Query(None, alias="bbox-crs"),
        crs: CrsParam = None,
        type: str | None = Query(None, description="city object types, comma-separated"),
        dataset: str | None = Query(None, description="dataset name"),
        datetime: str | None = Query(None, description="accepted; city objects have no time"),
        scenario: ScenarioParam = None,
    ) -> AsyncIterator[ItemsQuery]:
        params = ItemsQuery(
            min(limit, settings.max_limit),
            offset,
            bbox,
            bbox_crs,
            crs,
            type,
            dataset,
            datetime,
            scenario,
        )
        if params.limit <= settings.heavy_page:
            yield params
            return
        gate: HeavyGate = request.app.state.heavy
        await gate.enter()
        try:
            yield params
        finally:
            gate.leave()

    return query
