"""Running the service under uvicorn: one process, or several that each build their own app; with
the deadlines uvicorn lacks (a request's head and body must arrive in time, so a client sending a
byte a second is cut off), a request that frames its body twice refused, the connections each
process holds bounded, and each unexpected error logged once, without the query string."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.app import create_app
from cim.settings import ApiSettings, DatabaseSettings

LOG = logging.getLogger("cim.errors")
INVALID = (
    "not a valid HTTP/1.1 request (e.g. a malformed head, or a body framed by both "
    "Content-Length and Transfer-Encoding)"
)


def serve(host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    """Serve until interrupted, on the settings' interface and port unless others are given.

    Raises:
        CimError: the app cannot be built (e.g. the database is unreachable).
    """
    settings = ApiSettings()
    app = create_app(DatabaseSettings(), settings)
    # one JSON line per request from the service itself (cim.access); uvicorn's own access log
    # would repeat it with the query string
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
        "http": functools.partial(TimedH11Protocol, deadlines=ClientDeadlines.of(settings)),
        "limit_concurrency": settings.max_connections,
        "h11_max_incomplete_event_size": DEFAULT_MAX_INCOMPLETE_EVENT_SIZE,  # a head: 16 KiB
        "timeout_keep_alive": 5,  # an idle connection between requests, in seconds
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
                await send({"type": "http.response.body", "body": _problem(500, "internal error")})


# ---------------------------------------------------------------- connections
@dataclass(frozen=True)
class ClientDeadlines:
    """How long a client may take to send a request: its head (from the connection, or the
    previous response), and its body (`body_s`, one second more for every `body_min_rate`
    bytes it sent, as Apache's mod_reqtimeout counts)."""

    head_s: float
    body_s: float
    body_min_rate: float

    @staticmethod
    def of(settings: ApiSettings) -> ClientDeadlines:
        """The deadlines the settings give."""
        return ClientDeadlines(
            settings.header_timeout_s, settings.body_timeout_s, settings.body_min_rate
        )


class StrictConnection(h11.Connection):
    """h11's side of a connection, refusing a request that frames its body twice (both
    Content-Length and Transfer-Encoding: the shape of request smuggling, where a proxy in front
    may read the body one way and this server the other; RFC 9112 §6.1 lets a server refuse it,
    and it must close the connection)."""

    def next_event(self) -> Any:
        """The next event, as h11 parses it.

        Raises:
            h11.RemoteProtocolError: a request with both headers (and h11's own).
        """
        event = super().next_event()
        if isinstance(event, h11.Request):
            names = {name for name, _ in event.headers}  # lower case, as h11 gives them
            if b"content-length" in names and b"transfer-encoding" in names:
                raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", 400)
        return event


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with deadlines for what the client owes: a request's head
    within `deadlines.head_s` (uvicorn waits for it forever), its body at the least rate
    `deadlines` allows (uvicorn waits forever, and holds even a connection whose answer is sent).
    A client past its deadline gets 408 and the connection is closed; time the app has not read
    what came (the server's wait, not the client's) does not count. A request that frames its
    body twice gets 400 and the connection is closed."""

    def __init__(self, *args: Any, deadlines: ClientDeadlines, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = StrictConnection(
            h11.SERVER,
            self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE,
        )
        self.deadlines = deadlines
        self.access_log = False  # the app logs each request (cim.access); uvicorn's has the query
        self._owed = ""  # what the client owes: "head", "body" or nothing
        self._since = 0.0
        self._body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow()

    def data_received(self, data: bytes) -> None:
        if self._owed == "body":
            self._body_bytes += len(data)
        super().data_received(data)
        if not self.transport.is_closing():
            self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what h11 (or StrictConnection) refuses, as a problem
        self.transport.write(_raw(400, INVALID))
        self.transport.close()

    def _follow(self) -> None:
        """Set the deadline for what the client owes now: a request's head, its body, or
        nothing (the app has the request)."""
        state = self.conn.their_state
        owed = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else ""
        if owed == self._owed:
            return
        self._cancel()
        self._owed, self._since, self._body_bytes = owed, self.loop.time(), 0
        if owed:
            wait = self.deadlines.head_s if owed == "head" else self.deadlines.body_s
            self._timer = self.loop.call_at(self._since + wait, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self._owed == "body":
            if self.flow.read_paused:  # the app has not read what came: a new start after it
                self._since, self._body_bytes = now, 0
                self._timer = self.loop.call_at(now + self.deadlines.body_s, self._expired)
                return
            rate = self.deadlines.body_min_rate
            due = self._since + self.deadlines.body_s + self._body_bytes / rate
            if now < due:
                self._timer = self.loop.call_at(due, self._expired)
                return
        self._time_out()

    def _time_out(self) -> None:
        """Answer 408 (unless the app has begun to answer, or nothing of a request came) and
        close the connection; the app, if it has the request, hears the client has gone."""
        cycle = self.cycle
        if self._owed == "head":
            answer = bool(self.conn.trailing_data[0])  # part of a head came
        else:
            answer = not cycle.response_started
            if not cycle.response_complete:
                cycle.disconnected = True  # its receive() says so; what it sends is dropped
                cycle.message_event.set()
        self.logger.info("a request's %s was not received in time: connection closed", self._owed)
        if answer:
            limit = self.deadlines.head_s if self._owed == "head" else self.deadlines.body_s
            self.transport.write(
                _raw(408, f"the request's {self._owed} did not arrive in time ({limit:g} s)")
            )
        self.transport.close()


def _problem(status: int, detail: str) -> bytes:
    phrase = HTTPStatus(status).phrase
    doc = {"type": "about:blank", "title": phrase, "status": status, "detail": detail}
    return json.dumps(doc).encode()


def _start(status: int) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/problem+json"), (b"connection", b"close")],
    }


def _raw(status: int, detail: str) -> bytes:
    """A whole problem response, for the protocol to write itself before it closes."""
    body = _problem(status, detail)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
