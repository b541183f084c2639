"""Running the service under uvicorn (httptools on uvloop): one process, or several that each build
their own app; with the deadlines uvicorn lacks (api.protocol: a request's head and body must
arrive in time, so a client sending a byte a second is cut off), a request that frames its body
twice refused, the connections each process holds bounded, and each unexpected error logged once,
without the query string."""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app import create_app
from api.logs import configure
from api.protocol import ClientDeadlines, TimedHttpToolsProtocol, problem_body
from cim.settings import ApiSettings, DatabaseSettings

LOG = logging.getLogger("cim.errors")
# a served process logs a line per request with the message alone: what logging would find out
# for each record besides (the caller's file and line, thread, process) costs about 5 µs, a
# tenth of a warm tile's time in the app (the logging HOWTO's "Optimization")
logging._srcfile = None
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def serve(host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    """Serve until interrupted, on the settings' interface and port unless others are given.

    Raises:
        CimError: the app cannot be built (e.g. the database is unreachable).
    """
    settings = ApiSettings()
    app = create_app(DatabaseSettings(), settings)
    # one JSON line per request from the service itself (cim.access); uvicorn's own access log
    # would repeat it with the query string
    configure()
    os.environ["CIM_SERVE_LOG"] = "1"  # worker processes set up the same logging
    uvicorn.run(
        ErrorsLoggedOnce(app) if workers == 1 else "api.serve:served_app",
        factory=workers > 1,  # workers build the app themselves
        workers=workers,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=False,
        **server_options(settings),
    )


def served_app() -> ASGIApp:
    """The app as each worker of `cim serve --workers N` builds it."""
    return ErrorsLoggedOnce(create_app())


def server_options(settings: ApiSettings) -> dict[str, Any]:
    """uvicorn's options for the service (also for servers the tests start)."""
    return {
        # the app believes X-Forwarded-* from CIM_API_TRUSTED_PROXIES only (api.edge); uvicorn
        # would believe them from 127.0.0.1 (or FORWARDED_ALLOW_IPS), whatever the settings say
        "proxy_headers": False,
        # llhttp on uvloop (api.protocol): h11 on asyncio served warm tiles 60 times slower
        "http": functools.partial(TimedHttpToolsProtocol, deadlines=ClientDeadlines.of(settings)),
        "loop": "uvloop",
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": 5,  # an idle connection between requests, in seconds
        # at a stop, open event streams (the viewer's live sensors) get this long, then close
        "timeout_graceful_shutdown": 10,
    }


class ErrorsLoggedOnce:
    """The app as served: an unexpected error is logged by the app (its query string scrubbed,
    api.problems) and answered 500 there; Starlette raises it on all the same, and uvicorn would
    log it again, with every value in it. Here it stops."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # logged by the app already (api.problems)
            if not started:  # the app could not answer (its handler failed): name it, answer
                LOG.error(json.dumps({"event": "error", "error": type(exc).__name__}))
                await send(_start(500))
                await send(
                    {"type": "http.response.body", "body": problem_body(500, "internal error")}
                )


def _start(status: int) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/problem+json"), (b"connection", b"close")],
    }
