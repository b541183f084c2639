"""The warm path of tile contents: a pure ASGI middleware that answers a GET or HEAD of a tile
this process has in memory, known current (tiles.service `warm`: no database round trip), before
FastAPI's routing, validation, dependencies and the other middlewares; the answer is the one
the tile route gives (api.tiles: ETag, 304, gzip, Cache-Control, Vary, CORS headers). Anything
else — a tile not warm, a malformed URL, an origin the CORS settings would have to judge —
goes on to the app unchanged. The outer middleware (api.ops) still counts and logs it.

The same answers are given one step earlier by the fast lane (`Lane`), which the HTTP protocol
(api.protocol) asks before it makes an ASGI request cycle at all."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

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

# ASCII digits only, as the route's: `\d` would take other scripts' digits, which int() reads
_TILE = re.compile(
    r"/collections/([^/]+)/3dtiles/tiles/(\d{1,2})/(\d{1,9})/(\d{1,9})\.(\w+)", re.ASCII
)
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
Headers = list[tuple[bytes, bytes]]  # names in lower case, as ASGI gives a request's
Answer = tuple[int, Headers, bytes]  # status, headers, body
Recorder = Callable[[str, str, str, int, float], None]  # method, route, path, status, seconds


class WarmAnswers:
    """The answers of warm tiles and kept tileset JSON, from a request's method, path, query
    and headers: for the `WarmTiles` middleware, and for the protocol's fast lane (`Lane`)."""

    def __init__(
        self,
        service: TileService,
        cors_origins: Sequence[str],
        tilesets: TilesetAnswers | None = None,
    ) -> None:
        self.service = service
        self.tilesets = tilesets
        self.any_origin = "*" in cors_origins

    def answer(
        self, method: str, path: str, query: bytes, headers: Headers
    ) -> tuple[_Route, Answer] | None:
        """The route and answer of a warm tile or a kept tileset JSON; None when the app must
        answer."""
        if method not in ("GET", "HEAD"):
            return None
        found = _TILE.fullmatch(path)
        if found:
            answer = self._answer(query, headers, found)
            return None if answer is None else (ROUTE, answer)
        if self.tilesets is not None:
            found = _TILESET.fullmatch(path)
            if found:
                answer = self._tileset(query, headers, found[1])
                return None if answer is None else (TILESET_ROUTE, answer)
        return None

    def _request(self, headers: Headers) -> tuple[bytes, bytes, bool] | None:
        """Accept-Encoding, If-None-Match and whether an Origin came; None when the CORS
        middleware must judge the request."""
        accepts = b""
        asked = b""
        origin = False
        for name, value in headers:
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

    def _tileset(self, query: bytes, headers: Headers, city: str) -> Answer | None:
        """Status, headers and body of a tileset JSON answered before under the city's
        current token (api.tiles.TilesetAnswers); None when the app must answer."""
        assert self.tilesets is not None
        request = self._request(headers)
        kept = self.tilesets.get(city, query)
        if request is None or kept is None:
            return None
        accepts, asked, origin = request
        body, etag, packed = kept
        if b"gzip" in accepts and packed is not None:
            return self._headed(packed, etag, asked, origin, TILESET, True, REVALIDATE)
        return self._headed(body, etag, asked, origin, TILESET, False, REVALIDATE)

    def _answer(self, query: bytes, headers: Headers, found: re.Match[str]) -> Answer | None:
        """Status, headers and body of a warm tile; None when the app must answer."""
        city, level, x, y, ext = found.groups()
        fmt = EXTENSIONS.get(ext)
        key = (int(level), int(x), int(y))
        if fmt is None or key[0] > MAX_LEVEL or _names_scenario(query):
            return None  # a design scheme's tile is the app's to answer
        request = self._request(headers)
        if request is None:
            return None
        accepts, asked, origin = request
        packed = b"gzip" in accepts
        warm = self.service.warm(city, key, fmt, packed)
        if warm is None:
            return None
        content, etag = warm
        version = _version(query)
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
    ) -> Answer:
        """The answer as the route and the app's middlewares would give it."""
        quoted = f'"{etag}"'.encode()
        identity = not packed and len(content) >= GZIP_FROM and asked != quoted
        headers: Headers = [
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


def _names_scenario(query: bytes) -> bool:
    """Whether the query names a design scheme (`scenario`, as the tile route reads it)."""
    return any(p.partition(b"=")[0] == b"scenario" for p in query.split(b"&")) if query else False


def _version(query: bytes) -> str | None:
    """The `v` query parameter (a hex digest: nothing to decode)."""
    for part in query.split(b"&") if query else ():
        if part.startswith(b"v="):
            return part[2:].decode("latin-1")
    return None


class WarmTiles:
    """ASGI middleware: warm tile contents answered from memory (see the module)."""

    def __init__(self, app: ASGIApp, answers: WarmAnswers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http":
            found = self.answers.answer(
                scope["method"], scope["path"], scope.get("query_string", b""), scope["headers"]
            )
        if found is None:
            await self.app(scope, receive, send)
            return
        scope["route"], (status, headers, body) = found
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Lane:
    """The fast lane: what the protocol (api.protocol) answers itself, before any ASGI request
    cycle is made (no task, no message dicts, no middleware call): warm tiles and kept tileset
    JSON, answered as `WarmTiles` answers them and counted and logged as the `Observe`
    middleware does (`record`)."""

    def __init__(self, answers: WarmAnswers, record: Recorder) -> None:
        self.answers = answers
        self.record = record

    def __call__(self, method: str, path: str, query: bytes, headers: Headers) -> Answer | None:
        """The answer, counted and logged; None when the app must answer."""
        started = time.perf_counter()
        found = self.answers.answer(method, path, query, headers)
        if found is None:
            return None
        route, answer = found
        self.record(method, route.path, path, answer[0], time.perf_counter() - started)
        return answer
