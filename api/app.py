"""The FastAPI application: the only place that builds it."""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from api import live, ops, problems, web
from api.dependencies import KeyFirst, share_state
from api.edge import NoNul, RealClient
from api.features import CONFORMANCE, features_router
from api.grading import router as grading_router
from api.limits import BodyLimit, Lifetime, body_limit
from api.logs import configure
from api.openapi import openapi_30
from api.planning import planning_router
from api.processes import CONFORMANCE as PROCESSES_CONFORMANCE
from api.processes import processes_router
from api.sensorthings import sensorthings_router
from api.standby import StandbyRetry
from api.tiles import TilesetAnswers, tiles_router
from api.twin_web import twin_web_router
from api.warm import Lane, WarmAnswers, WarmTiles
from cim import __version__
from cim.db.engine import database_url, make_engine, read_urls
from cim.db.replicas import read_engine
from cim.settings import ApiSettings, DatabaseSettings, TileSettings, TwinSettings
from tiles.service import TileService

OPENAPI = "application/vnd.oai.openapi+json;version=3.0"


class EdgeFastAPI(FastAPI):
    """FastAPI with middlewares at its edge: outside its own layers (the error handler that
    answers 500, its exception telemetry and body-limit wrappers), which every request crossed
    before a warm tile was found: each wraps `send`, and they took a tenth of a warm tile's
    time. An exception an edge middleware raises goes to the server (uvicorn answers 500 and
    api.serve logs it), as one raised inside the app after its answer started does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.edge_middleware: list[Middleware] = []

    def add_edge_middleware(self, cls: Any, **options: Any) -> None:
        """Add a middleware outside all others (the last added is outermost)."""
        if self.middleware_stack is not None:
            raise RuntimeError("cannot add a middleware after the application has started")
        self.edge_middleware.insert(0, Middleware(cls, **options))

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, options in reversed(self.edge_middleware):
            app = cls(app, *args, **options)
        return app


def create_app(
    db: DatabaseSettings | None = None,
    settings: ApiSettings | None = None,
    engine: Engine | None = None,
    tile_settings: TileSettings | None = None,
    reads: Engine | None = None,
    twin_settings: TwinSettings | None = None,
) -> FastAPI:
    """Build the service for a database (from settings, or an engine the caller owns). Reads
    of tiles, features and dashboards go to `reads` (default: the hot standbys of
    `CIM_DATABASE_READ_URLS`, or none: the primary), writes to `engine`."""
    settings = settings or ApiSettings()
    if os.environ.get("CIM_SERVE_LOG") and not logging.getLogger().handlers:
        configure()  # a `cim serve` worker
    db = db or DatabaseSettings()
    engine = engine or make_engine(database_url(db))
    reads = reads or read_engine(engine, read_urls(db), db.read_wait_s, db.read_retry_s)
    app = EdgeFastAPI(
        title="CIM — City Information Model",
        version=__version__,
        description="3D city models as OGC API Features (one collection per city) and OGC 3D "
        "Tiles; smart-city star grading under /grading.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's OpenTelemetry hooks: unused (ops has the metrics), and 10 µs per request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.engine = engine
    app.state.read_engine = reads  # the primary's engine itself when there is no standby
    app.state.tiles = TileService(engine, tile_settings or TileSettings(), reads=reads)
    share_state(app, settings)  # what the grading routes read: settings, key failures, results
    problems.install(app)
    if reads is not engine:  # innermost: a read whose standby broke runs again elsewhere
        app.add_middleware(StandbyRetry, attempts=len(getattr(reads, "standbys", ())) + 1)
    # answers made per request are compressed per request, at level 1 (nginx's default): a
    # city's 520 KB of latest values took 13 ms at level 6 and 3 ms at 1, 8 % larger (tiles
    # are compressed once, at 6, and kept: api.tiles)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["Content-Crs", "ETag"],
    )
    app.include_router(planning_router(reads))  # before the cities': {city}-parcels
    app.include_router(features_router(reads, settings))
    tilesets = TilesetAnswers(app.state.tiles)  # tileset JSON kept per generation
    app.include_router(tiles_router(app.state.tiles, tilesets))
    app.include_router(grading_router)
    live.install(app, engine, twin_settings)  # the MQTT bridge, when a broker is there
    app.include_router(sensorthings_router(engine, reads, lambda: app.state.twin_mqtt()))
    app.include_router(twin_web_router(reads, twin_settings))  # the viewer's live twin
    app.include_router(processes_router(engine))  # planning analyses (OGC API Processes)

    web.mount(app, settings.cesium_dir)
    # a write's caller is checked before its body is read, and a body over its route's limit
    # (kilobytes for JSON, 50 MB for uploads) is refused before anything parses it
    app.add_middleware(KeyFirst)
    # before a key or a round is looked up: no NUL in any text, and the client behind trusted
    # proxies (the failed-login limit counts it)
    app.add_middleware(NoNul)
    app.add_middleware(RealClient, trusted=settings.trusted_proxies)
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_middleware(Lifetime)  # at start: the app out of the collector's way; at end: workers
    # warm tiles from memory, before routing, the middlewares above and FastAPI's own layers
    # (none of which a tile GET needs): inside ops, so each is still counted and logged
    warm = WarmAnswers(app.state.tiles, settings.cors_origins, tilesets)
    app.add_edge_middleware(WarmTiles, answers=warm)
    requests = ops.Requests(ops.install(app, engine, app.state.tiles.results))
    app.add_edge_middleware(ops.Observe, requests=requests)  # outermost: times and logs all
    # and before the app is called at all: the protocol asks the fast lane first (api.serve)
    app.state.lane = Lane(warm, requests.record)

    @app.get(
        "/",
        summary="Landing page (the 3D viewer for browsers)",
        tags=["Capabilities"],
        responses={
            200: {
                "description": "Links as JSON, or the viewer's HTML page (browsers, ?f=html)",
                "content": {"application/json": {}, "text/html": {}},
            }
        },
    )
    def landing(request: Request, f: str | None = None) -> Any:
        accept = request.headers.get("accept", "")
        if f == "html" or (f is None and "text/html" in accept):
            return web.viewer_page(settings.cesium_dir)
        base = str(request.base_url).rstrip("/")
        return {
            "title": app.title,
            "description": app.description,
            "links": [
                {"href": f"{base}/", "rel": "self", "type": "application/json"},
                {"href": f"{base}/api", "rel": "service-desc", "type": OPENAPI},
                {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
                {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
                {"href": f"{base}/grading", "rel": "grading", "type": "application/json"},
                {
                    "href": f"{base}/processes",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/processes",
                    "type": "application/json",
                    "title": "Planning analyses (OGC API Processes)",
                },
                {
                    "href": f"{base}/jobs",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/job-list",
                    "type": "application/json",
                },
                {
                    "href": f"{base}/grading/dashboard",
                    "rel": "alternate",
                    "type": "text/html",
                    "title": "Grading dashboard",
                },
                {
                    "href": f"{base}/?f=html",
                    "rel": "alternate",
                    "type": "text/html",
                    "title": "3D viewer",
                },
            ],
        }

    @app.get("/api", summary="This API's OpenAPI 3.0 description", tags=["Capabilities"])
    def api_doc() -> JSONResponse:
        if not hasattr(app.state, "openapi"):
            app.state.openapi = openapi_30(app, public_reads=not settings.grading_private)
        return JSONResponse(app.state.openapi, media_type=OPENAPI)

    app.state.conformance = CONFORMANCE + PROCESSES_CONFORMANCE
    return app
