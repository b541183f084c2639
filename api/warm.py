"""The warm path of tile contents: a pure ASGI middleware that answers a GET or HEAD of a tile
this process has in memory, known current (tiles.service `warm`: no database round trip), before
FastAPI's routing, validation, dependencies and the other middlewares; the answer is the one
the tile route gives (api.tiles: ETag, 304, gzip, Cache-Control, Vary, CORS headers). Anything
else — a tile not warm, a malformed URL, an origin the CORS settings would have to judge —
goes on to the app unchanged. The outer middleware (api.ops) still counts and logs it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from api.tiles import (
    IMMUTABLE,
    MEDIA,
    REVALIDATE,
    TILE_PATH,
    TILESET,
    TILESET_PATH,
    TilesetAnswers,
)
from cim.tiling import MAX_LEVEL
from tiles.service import EXTENSIONS, TileService

_TILE = re.compile(r"/collections/([^/]+)/3dtiles/tiles/(\d{1,2})/(\d{1,9})/(\d{1,9})\.(\w+)")
_TILESET = re.compile(r"/collections/([^/]+)/3dtiles/tileset\.json")
EXPOSED = b"Content-Crs, ETag"  # as the app's CORS middleware exposes them
# Vary as the tile route's answer leaves the app: the route names Accept-Encoding, the gzip
# middleware names it again on an uncompressed body of its minimum size or more, and the CORS
# middleware adds Origin (HEAD and GET, warm or not, must agree: api.tiles)
VARY = b"Accept-Encoding, Origin"
VARY_TWICE = b"Accept-Encoding, Accept-Encoding, Origin"
GZIP_FROM = 1024  # the app's GZipMiddleware minimum_size


class _Route:
    """What the metrics and the access log read of a route: its template."""

    def __init__(self, path: str) -> None:
        self.path = path


ROUTE = _Route(TILE_PATH)
TILESET_ROUTE = _Route(TILESET_PATH)


class WarmTiles:
    """ASGI middleware: warm tile contents answered from memory (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        service: TileService,
        cors_origins: Sequence[str],
        tilesets: TilesetAnswers | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.tilesets = tilesets
        self.any_origin = "*" in cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        answer = None
        found = _TILE.fullmatch(scope["path"])
        if found:
            answer, route = self._answer(scope, found), ROUTE
        elif self.tilesets is not None:
            found = _TILESET.fullmatch(scope["path"])
            if found:
                answer, route = self._tileset(scope, found[1]), TILESET_ROUTE
        if answer is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _request(self, scope: Scope) -> tuple[bytes, bytes, bool] | None:
        """Accept-Encoding, If-None-Match and whether an Origin came; None when the CORS
        middleware must judge the request."""
        accepts = b""
        asked = b""
        origin = False
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accepts = value
            elif name == b"if-none-match":
                asked = value
            elif name == b"origin":
                origin = True
            elif name == b"cookie":
                return None  # the CORS middleware answers a credentialed request its own way
        if origin and not self.any_origin:
            return None  # the CORS middleware decides what this origin may see
        return accepts, asked, origin

    def _tileset(
        self, scope: Scope, city: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Status, headers and body of a tileset JSON answered before under the city's
        current token (api.tiles.TilesetAnswers); None when the app must answer."""
        assert self.tilesets is not None
        request = self._request(scope)
        kept = self.tilesets.get(city, scope.get("query_string", b""))
        if request is None or kept is None:
            return None
        accepts, asked, origin = request
        body, etag, packed = kept
        if b"gzip" in accepts and packed is not None:
            return self._headed(packed, etag, asked, origin, TILESET, True, REVALIDATE)
        return self._headed(body, etag, asked, origin, TILESET, False, REVALIDATE)

    def _answer(
        self, scope: Scope, found: re.Match[str]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Status, headers and body of a warm tile; None when the app must answer."""
        city, level, x, y, ext = found.groups()
        fmt = EXTENSIONS.get(ext)
        key = (int(level), int(x), int(y))
        if fmt is None or key[0] > MAX_LEVEL:
            return None
        request = self._request(scope)
        if request is None:
            return None
        accepts, asked, origin = request
        packed = b"gzip" in accepts
        warm = self.service.warm(city, key, fmt, packed)
        if warm is None:
            return None
        content, etag = warm
        version = _version(scope)
        caching = IMMUTABLE if version and version == self.service.version(city) else REVALIDATE
        media = MEDIA.get(ext, "application/octet-stream")
        return self._headed(content, etag, asked, origin, media, packed, caching)

    @staticmethod
    def _headed(
        content: bytes,
        etag: str,
        asked: bytes,
        origin: bool,
        media: str,
        packed: bool,
        caching: str,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The answer as the route and the app's middlewares would give it."""
        quoted = f'"{etag}"'.encode()
        identity = not packed and len(content) >= GZIP_FROM and asked != quoted
        headers: list[tuple[bytes, bytes]] = [
            (b"etag", quoted),
            (b"cache-control", caching.encode()),
            (b"vary", VARY_TWICE if identity else VARY),
        ]
        if origin:
            headers += [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", EXPOSED),
            ]
        if asked == quoted:
            return 304, headers, b""
        headers += [
            (b"content-type", media.encode()),
            (b"content-length", str(len(content)).encode()),
        ]
        if packed:
            headers.append((b"content-encoding", b"gzip"))
        return 200, headers, content


def _version(scope: Scope) -> str | None:
    """The `v` query parameter (a hex digest: nothing to decode)."""
    query: bytes = scope.get("query_string", b"")
    for part in query.split(b"&") if query else ():
        if part.startswith(b"v="):
            return part[2:].decode("latin-1")
    return None
