"""3D Tiles routes: a city's tileset and its tile contents, made on first request and cached.

Each answers HEAD as it answers GET (status, ETag, Content-Type, Content-Encoding and the
Content-Length of the body GET would send), without the body: a client or CDN can check a
tile's ETag or size without fetching it. HEAD runs GET's code through every middleware, so the
headers cannot differ; the server (uvicorn) then sends the head alone, as HTTP wants. The
service builds no implicit tilesets, so there are no subtree routes.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Request, Response

from cim.tiling import MAX_LEVEL
from tiles.service import EXTENSIONS, TileService, format_of

TILESET = "application/json"
GEOVOLUMES = "application/3dtiles+json"
MEDIA = {"glb": "model/gltf-binary", "b3dm": "application/octet-stream"}
# tiles change only when a dataset changes: let caches keep them but ask again (cheap 304)
REVALIDATE = "public, max-age=0, must-revalidate"
GZIP_FROM = 1024  # bytes: smaller JSON goes as it is (as the app's gzip middleware does)
TILESET_PATH = "/collections/{city}/3dtiles/tileset.json"
TILE_PATH = "/collections/{city}/3dtiles/tiles/{level}/{x}/{y}.{fmt}"


def _etag_response(
    request: Request, body: bytes, etag: str, media_type: str, encoding: str | None = None
) -> Response:
    """The answer with its ETag (304 when the client has it), for GET and HEAD alike."""
    quoted = f'"{etag}"'
    headers = {"ETag": quoted, "Cache-Control": REVALIDATE, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == quoted:
        return Response(status_code=304, headers=headers)
    if encoding:
        headers["Content-Encoding"] = encoding
    return Response(body, media_type=media_type, headers=headers)


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "")


def tiles_router(service: TileService) -> APIRouter:
    """Routes of the 3D Tiles API served by `service`."""
    router = APIRouter(tags=["3D Tiles"])

    @router.get(TILESET_PATH, summary="The city as OGC 3D Tiles 1.1 (tileset JSON)")
    def tileset(city: str, request: Request, version: Literal["1.0", "1.1"] = "1.1") -> Response:
        """3D Tiles 1.1 (GLB content) by default; `?version=1.0` gives B3DM content."""
        body = orjson.dumps(service.tileset(city, format_of(version)))
        etag = hashlib.sha256(body).hexdigest()[:32]
        # compressed here rather than by the middleware, so that HEAD tells the same length
        if _accepts_gzip(request) and len(body) >= GZIP_FROM:
            packed = gzip.compress(body, compresslevel=6, mtime=0)
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
    ) -> Response:
        media = MEDIA.get(fmt, "application/octet-stream")
        made_as = EXTENSIONS[fmt]
        if _accepts_gzip(request):
            packed, etag = service.tile_gzip(city, (level, x, y), made_as)
            return _etag_response(request, packed, etag, media, "gzip")
        content, etag = service.tile(city, (level, x, y), made_as)
        return _etag_response(request, content, etag, media)

    # HEAD: the same functions, left out of the OpenAPI document (it would repeat GET's)
    router.add_api_route(TILESET_PATH, tileset, methods=["HEAD"], include_in_schema=False)
    router.add_api_route(TILE_PATH, tile, methods=["HEAD"], include_in_schema=False)
    return router
