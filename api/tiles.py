"""3D Tiles routes: a city's tileset and its tile contents, made on first request and cached."""

from __future__ import annotations

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


def _etag_response(
    request: Request, body: bytes, etag: str, media_type: str, encoding: str | None = None
) -> Response:
    quoted = f'"{etag}"'
    headers = {"ETag": quoted, "Cache-Control": REVALIDATE, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == quoted:
        return Response(status_code=304, headers=headers)
    if encoding:
        headers["Content-Encoding"] = encoding
    return Response(body, media_type=media_type, headers=headers)


def tiles_router(service: TileService) -> APIRouter:
    """Routes of the 3D Tiles API served by `service`."""
    router = APIRouter(tags=["3D Tiles"])

    @router.get(
        "/collections/{city}/3dtiles/tileset.json",
        summary="The city as OGC 3D Tiles 1.1 (tileset JSON)",
    )
    def tileset(city: str, request: Request, version: Literal["1.0", "1.1"] = "1.1") -> Response:
        """3D Tiles 1.1 (GLB content) by default; `?version=1.0` gives B3DM content."""
        body = orjson.dumps(service.tileset(city, format_of(version)))
        return _etag_response(request, body, hashlib.sha256(body).hexdigest()[:32], TILESET)

    @router.get(
        "/collections/{city}/3dtiles/tiles/{level}/{x}/{y}.{fmt}",
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
        if "gzip" in request.headers.get("accept-encoding", ""):
            packed, etag = service.tile_gzip(city, (level, x, y), made_as)
            return _etag_response(request, packed, etag, media, "gzip")
        content, etag = service.tile(city, (level, x, y), made_as)
        return _etag_response(request, content, etag, media)

    return router
