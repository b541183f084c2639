"""HTTP/1.1 for the service: uvicorn's httptools protocol (llhttp, the parser Node.js uses, on
uvloop; h11, uvicorn's pure-Python default, served warm tiles 60 times slower and sat on the
40 ms delayed ACK), with the deadlines uvicorn lacks (a request's head and body must arrive in
time, so a client sending a byte a second is cut off), a bound on a request's head, and its own
problem answer for what the parser refuses. llhttp itself refuses a request that frames its
body twice (Content-Length and Transfer-Encoding), and the connection is then closed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NamedTuple, cast

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from cim.settings import ApiSettings

INVALID = (
    "not a valid HTTP/1.1 request (e.g. a malformed head, or a body framed by both "
    "Content-Length and Transfer-Encoding)"
)
MAX_HEAD = 16 * 1024  # bytes of a request's head (h11's bound, which the service had before)
LOG = logging.getLogger("cim.errors")
Headers = list[tuple[bytes, bytes]]
# the fast lane (api.warm.Lane): method, path, query and headers → status, headers and body, or
# None when the app must answer
Lane = Callable[[str, str, bytes, Headers], tuple[int, Headers, bytes] | None]


class Laned(NamedTuple):
    """The fast lane's answer to a request: sent once the parser has all of it."""

    method: bytes
    keep: bool  # the connection (the client did not ask to close it)
    status: int
    headers: Headers
    body: bytes


class Coalesced:
    """A transport whose writes are held to the end of the event loop's turn, and go out with
    the next one in one system call (writev): uvicorn writes a response's head and its body
    apart, and each write to a TCP socket with Nagle off is a segment of its own, a wake-up of
    the client and a system call; the head's write took a quarter of a warm tile's time, more
    than the body's. Whatever is held goes out before the transport closes; everything else is
    the transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = data
            self._loop.call_soon(self._release)
        else:
            held, self._held = self._held, None
            self._transport.writelines((held, data))

    def write_now(self, *data: bytes) -> None:
        """Write `data` now, after whatever is held, in one system call."""
        held, self._held = self._held, None
        self._transport.writelines(data if held is None else (held, *data))

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def write_eof(self) -> None:
        self._release()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


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


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for what the client owes: a request's head
    within `deadlines.head_s` (uvicorn waits for it forever), its body at the least rate
    `deadlines` allows (uvicorn waits forever, and holds even a connection whose answer is sent).
    A client past its deadline gets 408 and the connection is closed; time the app has not read
    what came (the server's wait, not the client's) does not count. A head over 16 KiB gets 431,
    a request the parser refuses (one that frames its body twice among them) 400 once the
    requests before it are answered, and the connection is closed."""

    def __init__(self, *args: Any, deadlines: ClientDeadlines, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines = deadlines
        self.access_log = False  # the app logs each request (cim.access); uvicorn's has the query
        self._reading = "head"  # where the parser is: "head", "body", or "" (request complete)
        self._owed = ""  # what the client owes: "head", "body" or nothing
        self._since = 0.0
        self._bytes = 0  # of what is owed, since it was owed
        self._tail = b""  # the last bytes of an owed head so far (its end may be split)
        self._refused = False  # a bad request came: answered with 400 after those before it
        self._timer: asyncio.TimerHandle | None = None
        self.lane = lane_of(self.app)
        self._laned: Laned | None = None  # the fast lane's answer to the request being read
        self._laned_here = False  # the fast lane answered during the read being parsed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # the protocol and its request cycles write through this: a response's head goes out
        # with its body in one system call
        self._out = Coalesced(transport, self.loop)
        self.transport = cast(asyncio.Transport, self._out)
        self._follow()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # nothing after a bad request is read: its 400 closes the connection
        tail = self._tail
        if self._owed:
            if self._owed == "head" and self._reading == "head" and self._head_over(data):
                self._cancel()
                self.transport.write(_raw(431, f"a request's head is limited to {MAX_HEAD} bytes"))
                self.transport.close()
                return
            self._bytes += len(data)
        super().data_received(data)
        if self._laned_here:
            self._laned_here = False
            if self._owed == "head" and self._reading == "head":
                # the fast lane answered in this read, and the next head is owed from then on:
                # what of it came in this read, after the answered head's blank line, counts
                seen = tail + data
                end = seen.rfind(b"\r\n\r\n")
                self._bytes = len(seen) - (end + 4) if end >= 0 else len(data)
                self._tail = seen[-3:]
        if not self.transport.is_closing() and not self._refused:
            self._follow()

    def _head_over(self, data: bytes) -> bool:
        """Whether the head being read passes MAX_HEAD with `data`: only the bytes up to the
        blank line that ends it count (a body, or the next request, often comes in the same
        read: a 160 kB POST in one segment is not a 160 kB head)."""
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        self._tail = seen[-3:]
        if end < 0:
            return self._bytes + len(data) > MAX_HEAD
        return self._bytes + end + 4 - (len(seen) - len(data)) > MAX_HEAD

    # the parser's callbacks: where it is in the request
    def on_message_begin(self) -> None:
        self._reading = "head"
        # a request is coming: the connection is not idle. uvicorn stops its idle timer when
        # data comes, but an answer from the fast lane, given while the parser is still in the
        # data, starts it again, and it would close the connection under the requests behind
        self._unset_keepalive_if_required()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._reading = "body"
        self._laned = self._lane_answer()
        if self._laned is not None:
            return  # no request cycle: answered when the parser has the whole request
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading = ""
        if self._laned is not None:
            laned, self._laned = self._laned, None
            self._send_laned(*laned)
            return
        super().on_message_complete()

    # the fast lane: a warm tile (api.warm.Lane) answered here, with no ASGI request cycle,
    # task or message made for it; a warm tile cost about twice as much through them
    def _lane_answer(self) -> Laned | None:
        """The fast lane's answer to the request whose head has come; None (the app answers)
        unless it is a GET or HEAD of HTTP/1.1 with no body, with no request before it still
        being answered, within the concurrency limit, and the client reading what it is sent
        (else the app answers it and those pipelined after it as they are read: a client
        pipelining requests it never reads would otherwise have their answers pile up here)."""
        parser, lane = self.parser, self.lane
        if (
            lane is None
            or self.flow.write_paused
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or self.root_path
        ):
            return None
        method = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return None
        for name, value in self.headers:
            if name in _FRAMING and (name != b"content-length" or value.strip() != b"0"):
                return None  # a body (or the wish to send one): the app reads it
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return None  # uvicorn answers 503
        try:
            url = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            return None  # uvicorn answers 400
        if b"%" in url.path:
            return None  # escaped: uvicorn decodes it
        try:
            answer = lane(method.decode(), url.path.decode(), url.query or b"", self.headers)
        except Exception as exc:  # the app answers, and logs what it meets
            LOG.error(json.dumps({"event": "error", "error": type(exc).__name__, "in": "lane"}))
            return None
        return None if answer is None else Laned(method, parser.should_keep_alive(), *answer)

    def _send_laned(
        self, method: bytes, keep: bool, status: int, headers: Headers, body: bytes
    ) -> None:
        """Write the fast lane's answer as uvicorn writes an app's (its default headers first;
        no body to a HEAD; the connection closed after it when the client asked), and go on as
        after any answer."""
        self._cancel()
        self._owed = ""  # the request came whole: the next head is owed from now on
        self._laned_here = True
        if self.transport.is_closing():
            return
        try:
            head = [STATUS_LINE[status]]
            for name, value in (*self.server_state.default_headers, *headers):
                head += (name, b": ", value, b"\r\n")
            head.append(b"\r\n" if keep else b"connection: close\r\n\r\n")
            if method == b"HEAD" or not body:
                self._out.write_now(b"".join(head))
            else:
                self._out.write_now(b"".join(head), body)
            if not keep:
                self.transport.close()
            self.on_response_complete()
        except Exception as exc:  # raised into the parser, it would be answered 400 as bad input
            LOG.error(json.dumps({"event": "error", "error": type(exc).__name__, "in": "lane"}))
            self.transport.close()

    def on_response_complete(self) -> None:
        if self._reading == "":
            self._reading = "head"  # the next request's, unless the parser has begun it
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._refused:
            if not self._answering():
                self._refuse()  # the last answer before the bad request is sent
            return
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what llhttp refuses, as a problem; uvicorn sends it at once, but
        # HTTP/1.1 answers in order: the requests before the bad one (being answered, or
        # waiting in the pipeline) are answered first, and then the 400 closes the connection
        self._cancel()
        self._refused = True
        if not self._answering():
            self._refuse()

    def _answering(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _refuse(self) -> None:
        self.transport.write(_raw(400, INVALID))
        self.transport.close()

    def _follow(self) -> None:
        """Set the deadline for what the client owes now: a request's head (none is with the
        app), its body, or nothing (the app has the request)."""
        waiting = self.cycle is not None and not self.cycle.response_complete
        if self._reading == "body":
            owed = "body"
        elif self._reading == "head" and not waiting:
            owed = "head"
        else:
            owed = ""
        if owed == self._owed:
            return
        self._cancel()
        self._owed, self._since, self._bytes, self._tail = owed, self.loop.time(), 0, b""
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
                self._since, self._bytes = now, 0
                self._timer = self.loop.call_at(now + self.deadlines.body_s, self._expired)
                return
            rate = self.deadlines.body_min_rate
            due = self._since + self.deadlines.body_s + self._bytes / rate
            if now < due:
                self._timer = self.loop.call_at(due, self._expired)
                return
        self._time_out()

    def _time_out(self) -> None:
        """Answer 408 (unless the app has begun to answer, or nothing of a request came) and
        close the connection; the app, if it has the request, hears the client has gone."""
        cycle = self.cycle
        if self._owed == "head":
            answer = self._bytes > 0  # part of a head came
        else:
            answer = cycle is None or not cycle.response_started
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # its receive() says so; what it sends is dropped
                cycle.message_event.set()
        self.logger.info("a request's %s was not received in time: connection closed", self._owed)
        if answer:
            limit = self.deadlines.head_s if self._owed == "head" else self.deadlines.body_s
            self.transport.write(
                _raw(408, f"the request's {self._owed} did not arrive in time ({limit:g} s)")
            )
        self.transport.close()


_FRAMING = (b"content-length", b"transfer-encoding", b"expect")


def lane_of(app: Any) -> Lane | None:
    """The fast lane the served app offers (`app.state.lane`, api.app), found through the
    wrappers around it (each holds the next as `.app`); None when it offers none."""
    for _ in range(8):
        lane = getattr(getattr(app, "state", None), "lane", None)
        if lane is not None or app is None:
            return cast(Lane | None, lane)
        app = getattr(app, "app", None)
    return None


def problem_body(status: int, detail: str) -> bytes:
    """An RFC 9457 problem document."""
    phrase = HTTPStatus(status).phrase
    doc = {"type": "about:blank", "title": phrase, "status": status, "detail": detail}
    return json.dumps(doc).encode()


def _raw(status: int, detail: str) -> bytes:
    """A whole problem response, for the protocol to write itself before it closes."""
    body = problem_body(status, detail)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
