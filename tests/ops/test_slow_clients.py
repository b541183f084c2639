"""The service as `cim serve` runs it, on a real socket: a client that sends its request's head or
body a byte at a time is cut off (408, connection closed) once its deadline passes, and one that
sends nothing is closed; a request that frames its body twice (Content-Length and
Transfer-Encoding) gets 400 and its connection is closed, so nothing smuggled after it is read;
and an unexpected error is logged once, with no value of the query string in the log. The
deadlines are set short here (1 s); by default they are 10 s for a head and 30 s for a body."""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from api import store
from api.app import create_app
from api.serve import ErrorsLoggedOnce
from cim.settings import ApiSettings
from grading import access
from ingest.pipeline import ingest_files
from tests.conftest import shared
from tests.ops.serving import served_in_thread, until_closed

HEAD_S = 1.0
BODY_S = 1.0
SECRET = "cim_k_5ecret5ecret"
HOUSE = shared("citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml")


@pytest.fixture(scope="module")
def server(new_database: Any) -> Iterator[tuple[int, str, Engine]]:
    """A server on a free port, as `cim serve` configures uvicorn, with 1 s deadlines; its
    port, an admin key, and its database."""
    engine = new_database()
    ingest_files(engine, [HOUSE], "lyon", crs="EPSG:3946")
    settings = ApiSettings(header_timeout_s=HEAD_S, body_timeout_s=BODY_S, body_min_rate=1000)
    app = ErrorsLoggedOnce(create_app(engine=engine, settings=settings))
    # uvicorn's loggers (log_config None) reach the root logger, and so caplog
    with served_in_thread(app, settings) as port:
        _, key = access.create_key(engine, access.cli_actor(), "slow", "admin")
        yield port, key, engine


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=15)


def _answered(sock: socket.socket, wait: float) -> bool:
    """Whether the server has written (or closed) within `wait` seconds."""
    return bool(select.select([sock], [], [], wait)[0])


def _response(sock: socket.socket) -> bytes:
    """One whole response (its head, and a body of its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _trickle(sock: socket.socket, data: bytes, every: float) -> int:
    """Send `data` a byte at a time, `every` seconds apart, until the server answers or closes;
    the bytes sent."""
    for n in range(len(data)):
        try:
            sock.sendall(data[n : n + 1])
        except (BrokenPipeError, ConnectionResetError):
            return n
        if _answered(sock, every):
            return n + 1
    return len(data)


def test_a_head_sent_a_byte_at_a_time_is_cut_off_with_408(server: Any) -> None:
    port, _, _ = server
    head = b"GET /health HTTP/1.1\r\nHost: cim.test\r\nUser-Agent: slow\r\n\r\n"
    with _connect(port) as sock:
        started = time.monotonic()
        sent = _trickle(sock, head, every=0.25)
        answer = until_closed(sock)
        took = time.monotonic() - started
    assert sent < len(head), "the whole head was taken, however slowly it came"
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"application/problem+json" in answer
    assert HEAD_S - 0.1 <= took < HEAD_S + 5, took


def test_a_connection_that_sends_nothing_is_closed(server: Any) -> None:
    port, _, _ = server
    with _connect(port) as sock:
        started = time.monotonic()
        assert until_closed(sock) == b""  # nothing of a request came: nothing to answer
        assert time.monotonic() - started < HEAD_S + 5


def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(server: Any) -> None:
    port, key, _ = server
    body = b'{"id": "slow-2026", "year": 2026}' + b" " * 200
    head = (
        f"POST /grading/rounds HTTP/1.1\r\nHost: cim.test\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with _connect(port) as sock:
        sock.sendall(head)  # the head at once: the key is checked, then the body is read
        started = time.monotonic()
        sent = _trickle(sock, body, every=0.2)
        answer = until_closed(sock)
        took = time.monotonic() - started
    assert sent < len(body)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert BODY_S - 0.1 <= took < BODY_S + 5, took


def test_a_body_nobody_reads_must_still_arrive_in_time(server: Any) -> None:
    port, _, _ = server
    # /health answers without reading the body: uvicorn would then hold the connection for as
    # long as the body trickles in
    head = b"GET /health HTTP/1.1\r\nHost: cim.test\r\nContent-Length: 1000\r\n\r\n"
    with _connect(port) as sock:
        sock.sendall(head + b"x")
        assert _response(sock).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        for _ in range(int((BODY_S + 5) / 0.2)):
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            if _answered(sock, 0.2):
                break
        assert until_closed(sock) == b""  # answered already: closed without another word
        assert time.monotonic() - started < BODY_S + 5


def test_a_quick_client_keeps_its_connection(server: Any) -> None:
    port, _, _ = server
    request = b"GET /health HTTP/1.1\r\nHost: cim.test\r\n\r\n"
    with _connect(port) as sock:
        for _ in range(2):
            sock.sendall(request)
            assert _response(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(HEAD_S / 2)  # idle between requests, within the deadline


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
    ],
)
def test_a_body_framed_twice_is_400_and_the_connection_closed(server: Any, framing: bytes) -> None:
    port, _, _ = server
    smuggled = b"GET /health HTTP/1.1\r\nHost: cim.test\r\n\r\n"
    request = b"POST /grading/rounds HTTP/1.1\r\nHost: cim.test\r\n" + framing + b"\r\n0\r\n\r\n"
    with _connect(port) as sock:
        sock.sendall(request + smuggled)
        answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"Transfer-Encoding" in answer and b"application/problem+json" in answer
    assert b"HTTP/1.1 200" not in answer  # the request after it was never read


def test_an_unexpected_error_is_logged_once_without_the_query_string(
    server: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    port, _, engine = server

    def failing(engine_: Engine, q: store.ItemQuery) -> Any:
        # the shape of a real failure: SQLAlchemy's error text carries the bound values, and
        # a message quotes what it was given
        try:
            with engine_.connect() as conn:
                conn.execute(text("SELECT no_such_column WHERE :v <> ''"), {"v": q.dataset})
        except Exception as exc:
            raise RuntimeError(f"search of {q.dataset!r} failed") from exc

    monkeypatch.setattr(store, "search_items", failing)
    with caplog.at_level(logging.INFO):
        with _connect(port) as sock:
            sock.sendall(
                f"GET /collections/lyon/items?dataset={SECRET}&limit=1 HTTP/1.1\r\n"
                "Host: cim.test\r\nConnection: close\r\n\r\n".encode()
            )
            answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 500 "), answer
    logged = caplog.text + "".join(capfd.readouterr())
    assert "RuntimeError" in logged and "ProgrammingError" in logged  # it is logged ...
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage()[:200] for r in errors]  # ... once ...
    assert SECRET not in logged  # ... and nowhere with the query string's value
    assert "[hidden]" in logged
