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
from ingest.datasets import delete_dataset
from ingest.pipeline import ingest_files
from tests.conftest import shared
from tests.ingest.test_cityjson_files import FILES
from tests.ops.serving import cim_serve, get_once, raw_exchange, until_closed
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
