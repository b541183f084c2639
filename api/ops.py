"""Operations: `/health` (is the database reachable, is its schema current), `/metrics` (Prometheus
text: requests and latency by route, tile cache results, datasets and objects per city), and one
structured log line per request (JSON; never headers or query strings, so no key is logged)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from api.problems import problem
from tiles.service import TILE_SOURCES

ACCESS = logging.getLogger("cim.access")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class _CityModelCollector:
    """Read at each scrape: ready datasets and their objects per city (from `dataset`, cheap),
    and what the tile cache answered since the process started."""

    def __init__(self, engine: Engine, tile_results: Mapping[str, int]) -> None:
        self.engine = engine
        self.tile_results = tile_results

    def collect(self) -> Iterator[Any]:
        datasets = GaugeMetricFamily("cim_datasets", "Ready datasets per city", labels=["city"])
        objects = GaugeMetricFamily(
            "cim_city_objects", "City objects ingested per city", labels=["city"]
        )
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT city_code, count(*), coalesce(sum(object_count), 0) FROM dataset"
                        " WHERE status = 'ready' GROUP BY city_code ORDER BY city_code"
                    )
                ).all()
        except SQLAlchemyError:
            rows = []  # /health says why; the request metrics are still worth scraping
        for city, count, total in rows:
            datasets.add_metric([city], count)
            objects.add_metric([city], total)
        tiles = CounterMetricFamily(
            "cim_tile_cache_requests",
            "Tile contents served, by where they came from (memory, database cache, made)",
            labels=["result"],
        )
        for result in TILE_SOURCES:
            tiles.add_metric([result], self.tile_results.get(result, 0))
        yield from (datasets, objects, tiles)


_SECOND: list[Any] = [0, ""]  # the second of the last timestamp, and its text


def _timestamp() -> str:
    """Now in UTC to the millisecond, as `datetime.isoformat` writes it (its text made once a
    second: a request's log line took a fifth of its time formatting the time)."""
    now = time.time()
    second = int(now)
    if second != _SECOND[0]:
        _SECOND[:] = [second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")]
    return f"{_SECOND[1]}.{int((now - second) * 1000):03d}+00:00"


class Requests:
    """Counts and times every HTTP request by its route template, and logs it: for the `Observe`
    middleware, and for the requests the protocol answers itself (api.protocol's fast lane)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "cim_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "cim_http_request_duration_seconds",
            "HTTP request latency by method and route",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def record(self, method: str, template: str, path: str, status: int, seconds: float) -> None:
        """Count, time and log one request answered."""
        method = method if method in _METHODS else "OTHER"  # labels stay few
        counted = self._series.get((method, template, status))
        if counted is None:  # a child per label set, found once (labels() locks and hashes)
            counted = (
                self.requests.labels(method, template, str(status)),
                self.latency.labels(method, template),
            )
            self._series[(method, template, status)] = counted
        counted[0].inc()
        counted[1].observe(seconds)
        if ACCESS.isEnabledFor(logging.INFO):
            line = {
                "ts": _timestamp(),
                "event": "request",
                "method": method,
                "route": template,
                "path": path,
                "status": status,
                "ms": round(seconds * 1000, 2),
            }
            ACCESS.info(orjson.dumps(line).decode())


class Observe:
    """ASGI middleware: counts and times every HTTP request by its route template, and logs it
    (`Requests`)."""

    def __init__(self, app: ASGIApp, requests: Requests) -> None:
        self.app = app
        self.requests = requests

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.requests.record(
                scope.get("method", ""), template, scope.get("path", ""), status, seconds
            )


def install(app: FastAPI, engine: Engine, tile_results: Mapping[str, int]) -> CollectorRegistry:
    """Add the /health and /metrics routes (`tile_results`: the app's tile service's count of
    where tile contents came from); returns the registry the `Observe` middleware (which the
    caller puts outermost) counts into."""
    registry = CollectorRegistry()
    registry.register(_CityModelCollector(engine, tile_results))
    router = APIRouter(tags=["Operations"])

    @router.get("/health", summary="Whether the database answers and its schema is current")
    def health() -> Response:
        from cim.db.engine import current_revision, head_revision

        head = head_revision()
        try:
            current = current_revision(engine)
        except SQLAlchemyError as exc:
            return problem(503, f"database unreachable: {type(exc).__name__}", "/health")
        if current != head:
            return problem(
                503, f"schema at revision {current}, code needs {head}: run `cim db upgrade`"
            )
        return JSONResponse(
            {"status": "ok", "database": "reachable", "schema": {"current": current, "head": head}}
        )

    @router.get(
        "/metrics", summary="Prometheus metrics of this process", response_class=PlainTextResponse
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=PROMETHEUS)

    app.include_router(router)
    return registry
