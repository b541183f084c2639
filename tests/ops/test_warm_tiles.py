"""Warm tiles are served from memory, without the database, and yet a change is seen at once:
an ingest, a replace or a delete committed is visible in the very next request to either worker
of `cim serve --workers 2` (each process hears of it by LISTEN/NOTIFY, migration 0014). Tile
URLs in the tileset JSON carry the city's content version and are then immutable; a URL of an
older version is revalidated instead. The HTTP stack (httptools) bounds a request's head."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from api.app import create_app
from cim.errors import NotFound
from cim.settings import ApiSettings
from ingest.datasets import delete_dataset
from ingest.pipeline import ingest_files
from tests.conftest import shared
from tests.ingest.test_cityjson_files import FILES
from tests.ops.serving import (
    cim_serve,
    get_once,
    raw_exchange,
    served_in_thread,
    until_closed,
)
from tests.tiles.conftest import tiles_of
from tiles.service import TileService

DELFT = next(p for p in FILES if p.name == "delft.city.json")
HOUSE = shared("citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml")
CITY = "warm"
PREFIX = f"/collections/{CITY}/3dtiles/"


def _uris(port: int) -> list[str]:
    doc = get_once(port, PREFIX + "tileset.json?implicit=false").json()
    return [t["content"]["uri"] for t in tiles_of(doc) if "content" in t]


def _truth(engine: Engine, uri: str) -> tuple[int, str | None]:
    """What the database says of a tile now (status, ETag), from a service with no memory."""
    level, x, y = (int(part) for part in uri.split("?")[0].split(".")[0].split("/")[1:])
    service = TileService(engine)
    try:
        return 200, service.tile(CITY, (level, x, y))[1]
    except NotFound:
        return 404, None
    finally:
        service.generations.close()


def _seen(port: int, uris: list[str], times: int) -> dict[str, set[tuple[int, str | None]]]:
    """Status and ETag of each tile as answered `times` over new connections (both workers)."""
    seen: dict[str, set[tuple[int, str | None]]] = {}
    for uri in uris:
        for _ in range(times):
            answer = get_once(port, PREFIX + uri, {"Accept-Encoding": "gzip"})
            etag = answer.headers.get("etag")
            seen.setdefault(uri, set()).add((answer.status_code, etag and etag.strip('"')))
    return seen


def _check_now(engine: Engine, port: int, uris: list[str]) -> dict[str, tuple[int, str | None]]:
    """Asked right after a change, every answer (from either worker) is the database's."""
    seen = _seen(port, uris, 6)
    truth = {uri: _truth(engine, uri) for uri in uris}
    for uri in uris:
        assert seen[uri] == {truth[uri]}, (uri, seen[uri], truth[uri])
    return truth


def test_an_ingest_replace_or_delete_is_seen_at_once_by_every_worker(engine: Engine) -> None:
    ingest_files(engine, [DELFT], CITY, name="a")
    with cim_serve(engine, workers=2) as (_, port, _server):
        delft = _uris(port)
        assert delft
        time.sleep(1.5)  # both workers listening (each starts on its first tile request)
        _seen(port, delft, 8)  # warm in both workers
        before = _check_now(engine, port, delft)
        assert all(status == 200 for status, _ in before.values())

        ingest_files(engine, [HOUSE], CITY, crs="EPSG:3946", name="b")  # added
        both = sorted(set(delft) | set(_uris(port)))
        _check_now(engine, port, both)
        _seen(port, both, 4)

        delete_dataset(engine, CITY, "a")  # deleted: Delft's tiles go
        after = _check_now(engine, port, both)
        assert any(after[uri][0] == 404 for uri in delft)
        _seen(port, both, 4)

        ingest_files(engine, [DELFT], CITY, name="b")  # replaced: the house goes, Delft is back
        _check_now(engine, port, both)


def test_versioned_tile_urls_are_immutable_until_the_data_changes(engine: Engine) -> None:
    ingest_files(engine, [DELFT], CITY, name="a")
    with cim_serve(engine) as (_, port, _server):
        uri = _uris(port)[0]
        assert "?v=" in uri
        for _ in range(3):  # the slow path, then the warm one: the same answer
            answer = get_once(port, PREFIX + uri)
            assert answer.status_code == 200
            assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        plain = get_once(port, PREFIX + uri.split("?")[0])
        assert plain.headers["cache-control"] == "public, max-age=0, must-revalidate"
        etag = answer.headers["etag"]
        assert get_once(port, PREFIX + uri, {"If-None-Match": etag}).status_code == 304

        ingest_files(engine, [HOUSE], CITY, crs="EPSG:3946", name="b")
        fresh = _uris(port)
        assert uri not in fresh  # the version moved with the data
        stale = get_once(port, PREFIX + uri)
        assert stale.headers["cache-control"] == "public, max-age=0, must-revalidate"
        assert get_once(port, PREFIX + fresh[0]).headers["cache-control"].endswith("immutable")


def test_a_warm_tile_costs_no_database_round_trip(engine: Engine) -> None:
    ingest_files(engine, [DELFT], CITY, name="a")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    app = create_app(engine=engine)
    service: TileService = app.state.tiles
    with TestClient(app) as client:
        doc = client.get(PREFIX + "tileset.json?implicit=false").json()
        uri = next(t["content"]["uri"] for t in tiles_of(doc) if "content" in t)
        deadline = time.monotonic() + 30
        while service.generations.token(CITY) is None:  # the listener connects
            assert time.monotonic() < deadline, "the process never listened"
            time.sleep(0.05)
        json_uris = [PREFIX + "tileset.json" + q for q in ("?implicit=false", "", "?implicit=true")]
        asks = [
            (u, {"Accept-Encoding": encoding, **extra})
            for u in json_uris
            for encoding in ("gzip", "identity")
            for extra in ({}, {"Origin": "https://viewer.example"})
        ]
        first = [client.get(u, headers=h) for u, h in asks]  # answered by the app, kept
        etag = first[0].headers["etag"]
        for encoding in ("gzip", "identity"):
            client.get(PREFIX + uri, headers={"Accept-Encoding": encoding})  # learnt now
        statements.clear()
        answers: list[Any] = [
            client.get(PREFIX + uri, headers={"Accept-Encoding": encoding})
            for encoding in ("gzip", "identity") * 25
        ]
        again = [client.get(u, headers=h) for u, h in asks]  # kept: no database either
        not_modified = client.get(json_uris[0], headers={"If-None-Match": etag})
    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["content-encoding"] for a in answers[::2]} == {"gzip"}
    assert statements == []
    for made, warm in zip(first, again, strict=True):  # the same answer, byte for byte
        assert (warm.status_code, warm.content) == (made.status_code, made.content)
        assert sorted(warm.headers.multi_items()) == sorted(made.headers.multi_items())
    assert first[0].headers["content-encoding"] == "gzip"  # the explicit JSON passes 1 KB
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == etag
    service.generations.close()


def test_a_head_over_16_kib_is_refused_with_431_and_the_connection_closed(engine: Engine) -> None:
    with cim_serve(engine) as (_, port, _server):
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n"
        answer = raw_exchange(port, head + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert b"application/problem+json" in answer and b"HTTP/1.1 200" not in answer
        fine = raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert fine.startswith(b"HTTP/1.1 200 ")


def test_only_the_head_counts_towards_its_limit_whatever_comes_with_it(engine: Engine) -> None:
    """A body (or the next request) in the same read as a small head is no part of the head:
    a 40 kB POST sent in one write is answered as any POST, and the connection goes on; a head
    whose blank line is split between two writes is measured alike; a head over the limit is
    still refused when a body follows it in the same write."""
    body = b"{" + b" " * 39_998 + b"}"
    post = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n" + body
    last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with cim_serve(engine) as (_, port, _server):
        answer = raw_exchange(port, post + last)
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
        assert statuses == [b"405", b"200"], answer[:300]
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            split = post.index(b"\r\n\r\n") + 2
            sock.sendall(post[:split])
            time.sleep(0.2)  # two reads: the blank line comes in halves
            sock.sendall(post[split:] + last)
            answer = until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 405 ") and b"HTTP/1.1 200 " in answer, answer[:300]
        big = b"POST /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17_000
        answer = raw_exchange(port, big + b"\r\nContent-Length: 40000\r\n\r\n" + body)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]


def test_a_bad_request_after_good_ones_is_refused_after_they_are_answered(engine: Engine) -> None:
    """HTTP/1.1 answers in order: requests sent ahead of a malformed one (pipelined, here in one
    write) get their answers first, then its 400 closes the connection."""
    good = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with cim_serve(engine) as (_, port, _server):
        for ahead in (1, 3):
            answer = raw_exchange(port, good * ahead + b"0\r\n\r\n")
            statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
            assert statuses == [b"200"] * ahead + [b"400"], answer[-300:]
            assert answer.rstrip().endswith(b"}")  # the 400's problem, and nothing after it


def test_every_warm_tile_is_counted_and_logged_up_to_the_end(
    engine: Engine, tmp_path: Path
) -> None:
    """Warm tiles are answered at the app's edge (api.warm), yet each is counted in /metrics
    and has its log line, and the lines still waiting when the server is stopped are written
    (it ends on a signal, which skips Python's clean-up)."""
    ingest_files(engine, [DELFT], CITY, name="a")
    log = tmp_path / "serve.log"
    with cim_serve(engine, log_path=log) as (_, port, _server):
        uris = _uris(port)
        for uri in uris * 3:  # warm after the first round
            assert get_once(port, PREFIX + uri, {"Accept-Encoding": "gzip"}).status_code == 200
        metrics = get_once(port, "/metrics").text
    tile_route = "/collections/{city}/3dtiles/tiles/{level}/{x}/{y}.{fmt}"
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("cim_http_requests_total") and tile_route in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) == 3 * len(uris)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    logged = [line for line in lines if line.get("route") == tile_route]
    assert len(logged) == 3 * len(uris)
    assert {line["status"] for line in logged} == {200}


def _without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\ndate: [^\r]*", b"", answer)


def _request(path: str, *lines: str, method: str = "GET") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: x", *lines, "Connection: close", "", ""]
    return "\r\n".join(head).encode()


def _answers(sock: socket.socket, count: int) -> list[bytes]:
    """`count` whole answers (each with a Content-Length) read from a kept connection, and
    nothing more."""
    data, answers = b"", list[bytes]()

    def more() -> bytes:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {len(answers)} answers: {data[:300]!r}"
        return chunk

    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            data += more()
        head, _, data = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head)[1])  # type: ignore[index]
        while len(data) < length:
            data += more()
        answers.append(head + b"\r\n\r\n" + data[:length])
        data = data[length:]
    assert data == b"", "more answers came than requests"
    return answers


def test_the_fast_lane_answers_as_the_app_does(engine: Engine) -> None:
    """The protocol answers a warm tile or a kept tileset JSON itself (api.protocol's fast
    lane, with no ASGI request cycle): byte for byte what the app answers (its date aside), for
    every kind of request it takes, and each is counted in /metrics."""
    ingest_files(engine, [DELFT], CITY, name="a")
    app = create_app(engine=engine)
    lane = app.state.lane
    taken: list[str] = []

    def watched(method: str, path: str, query: bytes, headers: Any) -> Any:
        answer = lane(method, path, query, headers)
        if answer is not None:
            taken.append(path)
        return answer

    with served_in_thread(app, ApiSettings()) as port:
        deadline = time.monotonic() + 30
        while app.state.tiles.generations.token(CITY) is None:  # the listener connects
            assert time.monotonic() < deadline, "the process never listened"
            time.sleep(0.05)
        uris = _uris(port)  # its tileset JSON kept
        for uri in uris[:2] * 2:  # made, then warm
            assert get_once(port, PREFIX + uri, {"Accept-Encoding": "gzip"}).status_code == 200
            assert get_once(port, PREFIX + uri).status_code == 200
        tile, json_doc = PREFIX + uris[0], PREFIX + "tileset.json?implicit=false"
        etag, json_etag = (get_once(port, path).headers["etag"] for path in (tile, json_doc))
        asked = [
            _request(tile, "Accept-Encoding: gzip"),
            _request(tile),
            _request(PREFIX + uris[1].split("?")[0], "Accept-Encoding: gzip, br"),
            _request(tile, "Accept-Encoding: gzip", method="HEAD"),
            _request(tile, f"If-None-Match: {etag}"),
            _request(tile, "Origin: https://viewer.example", "Accept-Encoding: gzip"),
            _request(tile, "Content-Length: 0"),
            _request(json_doc, "Accept-Encoding: gzip"),
            _request(json_doc, f"If-None-Match: {json_etag}"),
        ]
        app.state.lane = watched
        laned = [raw_exchange(port, request) for request in asked]
        assert len(taken) == len(asked), taken  # all answered in the lane
        app.state.lane = None  # connections made from now on have no lane: the app answers
        through_app = [raw_exchange(port, request) for request in asked]
        metrics = get_once(port, "/metrics").text
    assert len(taken) == len(asked)
    for request, ours, theirs in zip(asked, laned, through_app, strict=True):
        assert _without_date(ours) == _without_date(theirs), request
    statuses = [answer.split(b" ", 2)[1] for answer in laned]
    assert statuses == [b"200"] * 4 + [b"304"] + [b"200"] * 3 + [b"304"]
    assert all(b"\r\nconnection: close\r\n" in answer for answer in laned)
    tile_route = "/collections/{city}/3dtiles/tiles/{level}/{x}/{y}.{fmt}"
    head_counted = f'cim_http_requests_total{{method="HEAD",route="{tile_route}",status="200"}}'
    assert f"{head_counted} 2.0" in metrics  # the lane's and the app's


def test_a_kept_connection_owes_each_head_from_its_previous_answer(engine: Engine) -> None:
    """After an answer from the fast lane the next request's head is owed afresh: a client
    asking every 0.4 s on one connection is served past the 1 s head deadline, pipelined
    requests are answered in order, and the connection left idle is closed after 1 s (not
    uvicorn's 5 s keep-alive). Requests the lane leaves to the app (HTTP/1.0, a body) get
    the same tile."""
    ingest_files(engine, [DELFT], CITY, name="a")
    app = create_app(engine=engine)
    with served_in_thread(app, ApiSettings(header_timeout_s=1.0)) as port:
        uri = PREFIX + _uris(port)[0]
        body = get_once(port, uri).content  # made, and warm after it
        get_once(port, uri)
        ask = f"GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            answers = []
            for _ in range(6):
                sock.sendall(ask)
                answers += _answers(sock, 1)
                time.sleep(0.4)
            sock.sendall(ask * 3)
            answers += _answers(sock, 3)
            idle = time.monotonic()
            assert until_closed(sock) == b""  # nothing of a head came: closed without a word
            idle = time.monotonic() - idle
        older = raw_exchange(port, f"GET {uri} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        with_body = raw_exchange(port, _request(uri, "Content-Length: 3") + b"abc")
    assert all(a.startswith(b"HTTP/1.1 200 ") and a.endswith(body) for a in answers)
    assert 0.8 < idle < 3.0, idle
    for answer in (older, with_body):
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(body), answer[:200]


def test_answers_to_a_client_that_does_not_read_wait_for_it(engine: Engine) -> None:
    """A client pipelining requests for a warm tile without reading the answers: once what it
    has not read fills the socket's buffers, the protocol stops answering in its fast lane and
    the app answers the rest as the client reads (the requests wait unread meanwhile); every
    answer comes, whole and in order, even when the client reads only after the 5 s a
    connection may stay idle (it is not idle: requests are waiting)."""
    ingest_files(engine, [DELFT], CITY, name="a")
    app = create_app(engine=engine)
    lane = app.state.lane
    taken: list[str] = []

    def watched(method: str, path: str, query: bytes, headers: Any) -> Any:
        taken.append(path)
        return lane(method, path, query, headers)

    with served_in_thread(app, ApiSettings()) as port:
        uri = PREFIX + _uris(port)[0].split("?")[0]
        body = get_once(port, uri).content  # made, and warm after it
        app.state.lane = watched
        count = 400
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(f"GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * count)
            time.sleep(6.0)  # nothing read, past uvicorn's 5 s for an idle connection
            answers = _answers(sock, count)
    assert all(a.startswith(b"HTTP/1.1 200 ") and a.endswith(body) for a in answers)
    assert 0 < len(taken) < count, len(taken)  # the lane first, then the app


def _exchange_in_reads(port: int, *writes: bytes) -> bytes:
    """Send each write apart (so that the server reads them apart), then read until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        for n, data in enumerate(writes):
            if n:
                time.sleep(0.2)
            sock.sendall(data)
        return until_closed(sock)


def test_requests_after_a_laned_answer_keep_their_order_and_head_limit(engine: Engine) -> None:
    """Requests behind an answer of the fast lane, in the same read: the app's and the lane's
    answers come in the order asked; a head that began in that read is measured from its first
    byte (not from the answer), so a head over 16 KiB split across two reads is refused 431,
    and a small head whose blank line is split across reads, with a large body, is not."""
    ingest_files(engine, [DELFT], CITY, name="a")
    app = create_app(engine=engine)
    with served_in_thread(app, ApiSettings()) as port:
        uri = PREFIX + _uris(port)[0].split("?")[0]
        get_once(port, uri)  # made, and warm after it
        tile = f"GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        mixed = _exchange_in_reads(port, tile + health + tile + health + tile + last)
        body = b"{" + b" " * 39_998 + b"}"
        post = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n"
        split = _exchange_in_reads(port, tile + post, b"\r\n" + body + last)
        big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 15_000
        over = _exchange_in_reads(port, tile + big, b"a" * 2_000 + b"\r\n\r\n" + last)
    kinds = re.findall(rb"HTTP/1\.1 (\d{3}) .*?content-type: ([\w/+-]+)", mixed, re.S)
    glb, json_doc = b"model/gltf-binary", b"application/json"
    assert kinds == [(b"200", k) for k in (glb, json_doc, glb, json_doc, glb, json_doc)], kinds
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", split) == [b"200", b"405", b"200"], split[-300:]
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", over) == [b"200", b"431"], over[-300:]
