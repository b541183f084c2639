"""3D Tiles routes: a city's tileset and its tile contents, made on first request and cached.

Each answers HEAD as it answers GET (status, ETag, Content-Type, Content-Encoding and the
Content-Length of the body GET would send), without the body: a client or CDN can check a
tile's ETag or size without fetching it. HEAD runs GET's code through every middleware, so the
headers cannot differ; the server (uvicorn) then sends the head alone, as HTTP wants.

Cities of more than `IMPLICIT_FROM_TILES` tiles get a 3D Tiles 1.1 implicit tileset (a few
hundred bytes, whatever the city's size; tiles.implicit) and its subtree files;
`?implicit=false` asks for the explicit one, `?implicit=true` for the implicit one of any city.
Both name the same contents, except where a tile's content would pass 2 MB: the implicit
tileset then gives that tile's objects out to finer cells (tiles.split) and names its contents
`cells/...`; cities with such a tile get the implicit tileset by default, and their explicit
tilesets (3D Tiles 1.1, and 1.0 with each cell's content in its 1.0 format) name the same cells.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from cim.errors import InvalidInput
from cim.tiling import MAX_LEVEL
from tiles.availability import Availability
from tiles.generations import Token
from tiles.implicit import IMPLICIT_FROM_TILES
from tiles.scenario import ScenarioTiles
from tiles.service import EXTENSIONS, TileService, format_of
from tiles.split import DEEPEST

TILESET = "application/json"
GEOVOLUMES = "application/3dtiles+json"
MEDIA = {"glb": "model/gltf-binary", "b3dm": "application/octet-stream"}
# tiles change only when a dataset changes: let caches keep them but ask again (cheap 304)
REVALIDATE = "public, max-age=0, must-revalidate"
# a tile asked for under its city's current content version (?v=): its bytes never change
IMMUTABLE = "public, max-age=31536000, immutable"
GZIP_FROM = 1024  # bytes: smaller JSON goes as it is (as the app's gzip middleware does)
TILESET_PATH = "/collections/{city}/3dtiles/tileset.json"
TILE_PATH = "/collections/{city}/3dtiles/tiles/{level}/{x}/{y}.{fmt}"
SUBTREE_PATH = "/collections/{city}/3dtiles/subtrees/{level}/{x}/{y}.subtree"
CELL_PATH = "/collections/{city}/3dtiles/cells/{level}/{x}/{y}.{fmt}"
Scenario = Annotated[
    str | None,
    Query(
        description="a design scheme of the city (方案): the city as it has it (tiles.scenario); "
        "its tileset is explicit, and names the contents the scheme changes with this parameter"
    ),
]


def _etag_response(
    request: Request,
    body: bytes,
    etag: str,
    media_type: str,
    encoding: str | None = None,
    caching: str = REVALIDATE,
) -> Response:
    """The answer with its ETag (304 when the client has it), for GET and HEAD alike."""
    quoted = f'"{etag}"'
    headers = {"ETag": quoted, "Cache-Control": caching, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == quoted:
        return Response(status_code=304, headers=headers)
    if encoding:
        headers["Content-Encoding"] = encoding
    return Response(body, media_type=media_type, headers=headers)


class TilesetAnswers:
    """The tileset JSON this process answered, by city and query string, each with its ETag and
    gzip form and the city's token it was made under (tiles.generations): while the token holds,
    the route and the warm path (api.warm) answer from here, with no database round trip, no
    digest and no compression per request (the explicit JSON of a million buildings is 1 MB).
    Only query strings of the route's own parameters are kept, and at most `LIMIT` of them."""

    LIMIT = 1000
    _PARAMETERS = frozenset({b"version", b"implicit"})

    def __init__(self, service: TileService) -> None:
        self.service = service
        self._kept: dict[tuple[str, bytes], tuple[Token, bytes, str, bytes | None]] = {}

    def get(self, city: str, query: bytes) -> tuple[bytes, str, bytes | None] | None:
        """The body, ETag and gzip form (None under `GZIP_FROM` bytes) when known current."""
        kept = self._kept.get((city, query))
        if kept is None or kept[0] != self.service.generations.token(city):
            return None
        return kept[1], kept[2], kept[3]

    def put(
        self, city: str, query: bytes, token: Token | None, body: bytes
    ) -> tuple[str, bytes | None]:
        """The ETag and gzip form of a body made under `token`, kept when the token is known."""
        etag = hashlib.sha256(body).hexdigest()[:32]
        packed = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_FROM else None
        names = [part.partition(b"=")[0] for part in query.split(b"&")] if query else []
        if token is not None and len(set(names)) == len(names) <= 2:
            if set(names) <= self._PARAMETERS:
                if len(self._kept) >= self.LIMIT:
                    self._kept.clear()
                self._kept[(city, query)] = (token, body, etag, packed)
        return etag, packed


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "")


def _caching(request: Request, service: TileService, city: str) -> str:
    """Immutable for a URL of the city's current content version, else revalidated."""
    asked = request.query_params.get("v")
    return IMMUTABLE if asked is not None and asked == service.version(city) else REVALIDATE


def tiles_router(service: TileService, answers: TilesetAnswers | None = None) -> APIRouter:
    """Routes of the 3D Tiles API served by `service`; tileset JSON answers are kept in
    `answers` (shared with the warm path)."""
    router = APIRouter(tags=["3D Tiles"])
    available = Availability(service)
    kept_answers = answers or TilesetAnswers(service)
    schemes = ScenarioTiles(service)

    @router.get(TILESET_PATH, summary="The city as OGC 3D Tiles 1.1 (tileset JSON)")
    def tileset(
        city: str,
        request: Request,
        version: Literal["1.0", "1.1"] = "1.1",
        implicit: Annotated[
            bool | None,
            Query(
                description="true: the implicit tileset (3D Tiles 1.1 only: with version=1.0 "
                "it is a 400); false: the explicit one; unset: implicit for large cities"
            ),
        ] = None,
        scenario: Scenario = None,
    ) -> Response:
        """3D Tiles 1.1 (GLB content) by default; `?version=1.0` gives B3DM content. Implicit
        tiling (1.1 only) for cities of more than 1,000 tiles, or with `?implicit=true`.
        `?scenario=` gives the city as that design scheme has it."""
        fmt = format_of(version)
        if implicit and version != "1.1":
            raise InvalidInput("implicit tiling is 3D Tiles 1.1: ask for version 1.1")
        if scenario is not None:
            if implicit:
                raise InvalidInput("a design scheme's tileset is explicit: leave out implicit=true")
            body = schemes.tileset(city, scenario, fmt)
            etag = hashlib.sha256(body).hexdigest()[:32]
            return _etag_response(request, body, etag, TILESET)
        query: bytes = request.scope.get("query_string", b"")
        kept = kept_answers.get(city, query)
        if kept is not None:
            body, etag, packed = kept
        else:
            token = service.generations.token(city)  # before the data is read
            if implicit or (implicit is None and version == "1.1" and _large_or_dense(city)):
                body = available.tileset(city)
            elif available.over_full(city) > 0:
                body = available.explicit(city, fmt)  # its parts too: every content in budget
            else:
                body = service.tileset_json(city, fmt)  # content URIs carry ?v= (api.warm)
            etag, packed = kept_answers.put(city, query, token, body)
        # compressed here rather than by the middleware, so that HEAD tells the same length
        if _accepts_gzip(request) and packed is not None:
            return _etag_response(request, packed, etag, TILESET, "gzip")
        return _etag_response(request, body, etag, TILESET)

    @router.get(
        TILE_PATH,
        summary="One tile's content (.glb for 3D Tiles 1.1; .b3dm, .pnts or .cmpt for 1.0)",
    )
    def tile(
        city: str,
        level: Annotated[int, Path(ge=0, le=MAX_LEVEL)],
        x: Annotated[int, Path(ge=0)],
        y: Annotated[int, Path(ge=0)],
        fmt: Literal["glb", "b3dm", "pnts", "cmpt"],
        request: Request,
        scenario: Scenario = None,
    ) -> Response:
        media = MEDIA.get(fmt, "application/octet-stream")
        made_as = EXTENSIONS[fmt]
        if scenario is not None:  # the baseline's own where the scheme changes nothing
            content, etag = schemes.tile(city, scenario, (level, x, y), made_as)
            return _etag_response(request, content, etag, media)
        if _accepts_gzip(request):
            packed, etag = service.tile_gzip(city, (level, x, y), made_as)
            caching = _caching(request, service, city)
            return _etag_response(request, packed, etag, media, "gzip", caching)
        content, etag = service.tile(city, (level, x, y), made_as)
        return _etag_response(request, content, etag, media, None, _caching(request, service, city))

    def _large_or_dense(city: str) -> bool:
        """Cities of many tiles, or with a tile over the content budget (whose objects only
        the implicit tileset gives out in parts), are served implicit by default."""
        return available.count(city) > IMPLICIT_FROM_TILES or available.over_full(city) > 0

    @router.get(CELL_PATH, summary="A cell's content, in a city whose dense tiles were split")
    def cell(
        city: str,
        level: Annotated[int, Path(ge=0, le=DEEPEST)],
        x: Annotated[int, Path(ge=0)],
        y: Annotated[int, Path(ge=0)],
        fmt: Literal["glb", "b3dm", "pnts", "cmpt"],
        request: Request,
    ) -> Response:
        """The content of a cell of the tilesets of a city with tiles whose content would pass
        2 MB: their objects are given out to finer cells, so that every content streams
        (tiles.split); a cell that has none of them gives its tile's own content. `.glb` for
        3D Tiles 1.1; `.b3dm`, `.pnts` or `.cmpt` for 1.0 (as its explicit tileset names it)."""
        content, etag = available.cell(city, level, x, y, EXTENSIONS[fmt])
        return _etag_response(request, content, etag, MEDIA.get(fmt, "application/octet-stream"))

    @router.get(SUBTREE_PATH, summary="A subtree file of the city's implicit tileset")
    def subtree(
        city: str,
        level: Annotated[int, Path(ge=0, le=DEEPEST)],
        x: Annotated[int, Path(ge=0)],
        y: Annotated[int, Path(ge=0)],
        request: Request,
    ) -> Response:
        """Tile, content and child-subtree availability below one cell (3D Tiles 1.1)."""
        data = available.subtree(city, level, x, y)
        etag = hashlib.sha256(data).hexdigest()[:32]
        return _etag_response(request, data, etag, "application/octet-stream")

    # HEAD: the same functions, left out of the OpenAPI document (it would repeat GET's)
    router.add_api_route(TILESET_PATH, tileset, methods=["HEAD"], include_in_schema=False)
    router.add_api_route(TILE_PATH, tile, methods=["HEAD"], include_in_schema=False)
    router.add_api_route(SUBTREE_PATH, subtree, methods=["HEAD"], include_in_schema=False)
    router.add_api_route(CELL_PATH, cell, methods=["HEAD"], include_in_schema=False)
    return router
