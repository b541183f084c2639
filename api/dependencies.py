"""What routes share, as FastAPI dependencies: the app's database engine, settings and grading
results cache (all on `app.state`, one set per app); who the caller is (API keys, roles, the
limit on failed authentications); uploaded files; and the query parameters of the Features API.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.limits import FailureLimiter
from cim.errors import TooLarge, Unauthorized
from cim.settings import ApiSettings
from grading import access, evidence, rounds
from grading.access import Actor
from grading.outcome import ResultsCache

LOG = logging.getLogger("cim.errors")
ANONYMOUS = Actor("anonymous", "viewer")
AUDITED = (401, 403, 409)


def record_refusal(request: Request, status: int, detail: str) -> None:
    """A refused grading request (401, 403, 409) into the audit log, naming its caller."""
    if status not in AUDITED or not request.url.path.startswith("/grading"):
        return
    actor = getattr(request.state, "actor", None) or ANONYMOUS
    target = f"{request.method} {request.url.path}"
    round_id = request.path_params.get("round_id")
    try:
        access.record_refusal(request.app.state.engine, actor, round_id, target, status, detail)
    except SQLAlchemyError:  # the refusal stands; the log says the record could not be written
        LOG.exception("refused request not audited: %s", target)


def share_state(app: FastAPI, settings: ApiSettings) -> None:
    """Keep on `app.state` what the dependencies below read besides the engine: the settings,
    the count of failed authentications and the grading results cache (each app its own)."""
    app.state.settings = settings
    app.state.auth_failures = FailureLimiter(settings.auth_failures, settings.auth_window_s)
    app.state.results_cache = ResultsCache()
    app.state.record_refusal = record_refusal


# async: they only read app.state, so they need no worker thread
async def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return request.app.state.engine  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ApiSettings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_results_cache(request: Request) -> ResultsCache:
    """The app's cache of grading results."""
    return request.app.state.results_cache  # type: ignore[no-any-return]


DB = Annotated[Engine, Depends(get_engine)]
Settings = Annotated[ApiSettings, Depends(get_settings)]
Cache = Annotated[ResultsCache, Depends(get_results_cache)]

# ---------------------------------------------------------------- who is calling
_bearer = HTTPBearer(auto_error=False, description="A CIM grading API key")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="A CIM grading API key")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
KeyHeader = Annotated[str | None, Depends(_header)]


async def presented(request: Request, bearer: Bearer, header: KeyHeader) -> str | None:
    """The key the request brings; "" for credentials that are there but empty or not a
    bearer token (refused like a wrong key); None only when it brings none at all."""
    if bearer is not None or header:
        return bearer.credentials if bearer is not None else header
    scheme = request.headers.get("authorization", "").split(" ")[0].lower()
    if "x-api-key" in request.headers or scheme == "bearer":
        return ""
    return None  # e.g. Basic credentials of a proxy in front: not ours


Presented = Annotated[str | None, Depends(presented)]


def authenticated(request: Request, key: str | None) -> Actor:
    """The key's actor; failures are counted per client address, and a client that fails too
    often is refused for a while, whatever key it brings.

    Raises:
        TooManyAttempts: too many failures from this address lately. Unauthorized: no key, or
        one that is not valid.
    """
    limiter: FailureLimiter = request.app.state.auth_failures
    client = request.client.host if request.client else "unknown"
    limiter.check(client)
    try:
        if key == "":
            raise Unauthorized("the credentials are empty or not a bearer token")
        actor = access.authenticate(request.app.state.engine, key)
        request.state.actor = actor  # named in the audit log if the request is refused
        return actor
    except Unauthorized:
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
Writer = Annotated[Actor, Depends(require_role(access.ROLES[1]))]


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


def items_query(settings: ApiSettings) -> Callable[..., Awaitable[ItemsQuery]]:
    """The dependency that reads an items request's query parameters (the page size's default
    and limit are the app's settings, and so part of its API description)."""

    async def query(  # async: it only reads the parameters, so it needs no worker thread
        limit: int = Query(
            settings.default_limit, ge=1, description=f"page size (at most {settings.max_limit})"
        ),
        offset: int = Query(0, ge=0),
        bbox: str | None = Query(None, description="minx,miny,maxx,maxy (in bbox-crs)"),
        bbox_crs: str | None = Query(None, alias="bbox-crs"),
        crs: CrsParam = None,
        type: str | None = Query(None, description="city object types, comma-separated"),
        dataset: str | None = Query(None, description="dataset name"),
        datetime: str | None = Query(None, description="accepted; city objects have no time"),
    ) -> ItemsQuery:
        return ItemsQuery(
            min(limit, settings.max_limit), offset, bbox, bbox_crs, crs, type, dataset, datetime
        )

    return query
