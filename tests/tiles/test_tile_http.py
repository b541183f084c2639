"""The 3D Tiles routes over a real socket: HEAD answers as GET does (status, ETag, type,
encoding, Content-Length) without a body; and the tile cache keeps one content per setting
that changes a tile's bytes, and makes a tile again when the code or the schema that made it
is not the one in use."""

from __future__ import annotations

import ast
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from api.app import create_app
from cim.settings import ApiSettings, TileSettings
from ingest.pipeline import ingest_files
from tests.ingest.test_cityjson_files import FILES
from tests.ops.serving import served_in_thread
from tests.tiles.conftest import tiles_of
from tiles import cache_key
from tiles.cache_key import BYTE_SETTINGS, NEUTRAL_SETTINGS
from tiles.gltf import read_glb
from tiles.service import TileService, content_keys

DELFT = next(p for p in FILES if p.name == "delft.city.json")
SAME = ("etag", "content-type", "content-length", "content-encoding", "cache-control", "vary")


@pytest.fixture(scope="module")
def base(new_database: Callable[[], Engine]) -> Iterator[str]:
    """Delft served as `cim serve` serves it (uvicorn, its options), on a free port."""
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    settings = ApiSettings()
    with served_in_thread(create_app(engine=engine, settings=settings), settings) as port:
        yield f"http://127.0.0.1:{port}"


def _urls(base: str) -> list[str]:
    """Both tilesets and one content of each (a .glb and a .b3dm)."""
    urls = []
    for version in ("1.1", "1.0"):
        tileset = f"{base}/collections/delft/3dtiles/tileset.json?version={version}"
        doc = httpx.get(tileset, timeout=60).json()
        uri = next(t["content"]["uri"] for t in tiles_of(doc) if "content" in t)
        urls += [tileset, f"{base}/collections/delft/3dtiles/{uri}"]
    return urls


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_head_answers_as_get_does_without_the_body(base: str, encoding: str) -> None:
    headers = {"Accept-Encoding": encoding}
    with httpx.Client(timeout=60) as client:
        for url in _urls(base):
            got = client.get(url, headers=headers)
            head = client.head(url, headers=headers)
            assert got.status_code == head.status_code == 200, url
            for name in SAME:
                assert head.headers.get(name) == got.headers.get(name), (url, name)
            assert head.content == b""
            # the length is that of the body GET sends (compressed or not)
            assert int(head.headers["content-length"]) == len(got.content) or (
                got.headers.get("content-encoding") == "gzip"
            )
            if encoding == "gzip" and url.endswith(("glb", "b3dm")):
                assert head.headers["content-encoding"] == "gzip"
            again = client.head(url, headers={**headers, "If-None-Match": got.headers["etag"]})
            assert again.status_code == 304 and again.headers["etag"] == got.headers["etag"]
        missing = client.head(f"{base}/collections/nowhere/3dtiles/tileset.json")
        assert missing.status_code == 404


def test_head_sends_no_body_on_the_wire(base: str) -> None:
    """Read raw from the socket: the head of the answer, and not one byte after it."""
    url = _urls(base)[1]
    path = url.removeprefix(base)
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    assert length == len(httpx.get(url, headers={"Accept-Encoding": "identity"}).content) > 0
    assert rest == b""


def test_each_setting_that_changes_bytes_is_in_the_cache_key(
    new_database: Callable[[], Engine],
) -> None:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    packed, plain = TileService(engine), TileService(engine, TileSettings(meshopt=False))
    key = content_keys(packed.tileset("delft"))[0]
    a, b = packed.tile("delft", key)[0], plain.tile("delft", key)[0]
    assert "EXT_meshopt_compression" in read_glb(a)[0]["extensionsUsed"]
    assert "EXT_meshopt_compression" not in read_glb(b)[0].get("extensionsUsed", [])
    with engine.connect() as conn:
        variants = conn.execute(
            text("SELECT variant, etag FROM tile_cache WHERE format = 'glb'")
        ).all()
    assert len({v for v, _ in variants}) == 2 and len(variants) == 2  # one row each
    # each process serves its own kind from the database, not the other's
    for service, content in ((packed, a), (plain, b)):
        fresh = TileService(engine, service.settings)
        assert fresh.tile("delft", key)[0] == content
        assert fresh.results == {"database": 1}
    # 1.0 content does not depend on meshopt: both processes share it
    assert packed.variants["b3dm"] == plain.variants["b3dm"]
    assert packed.variants["glb"] != plain.variants["glb"]


def test_a_tile_made_by_other_code_or_schema_is_made_again_in_place(
    new_database: Callable[[], Engine],
) -> None:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    service = TileService(engine)
    key = content_keys(service.tileset("delft"))[0]
    content, etag = service.tile("delft", key)
    with engine.begin() as conn:
        conn.execute(text("UPDATE tile_cache SET made_with = 'older', content = '\\x00'"))
    again = TileService(engine)
    assert again.tile("delft", key) == (content, etag)  # not the stale bytes
    assert again.results == {"made": 1}
    with engine.connect() as conn:
        [(made_with, n)] = conn.execute(
            text("SELECT made_with, count(*) OVER () FROM tile_cache")
        ).all()
    assert made_with != "older" and n == 1  # replaced, not added


def test_every_tile_setting_is_known_to_change_bytes_or_not() -> None:
    """A new setting must be put in BYTE_SETTINGS (and so in the cache key) or be declared
    neutral: nothing is left to chance."""
    byte_settings = {name for names in BYTE_SETTINGS.values() for name in names}
    assert set(TileSettings.model_fields) == byte_settings | set(NEUTRAL_SETTINGS)
    assert not byte_settings & set(NEUTRAL_SETTINGS)


def test_the_code_revision_covers_every_module_that_writes_contents() -> None:
    """Every CIM module that tiles.content imports, directly or not, is in the digest of the
    code that made a kept tile (so a change to any of them makes tiles again)."""
    root = Path(__file__).resolve().parents[2]
    seen: set[str] = set()
    todo = ["tiles.content"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((root / (name.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] in ("tiles", "cim") and node.module != "cim.errors":
                    todo.append(node.module)
    assert seen <= set(cache_key.WRITERS), seen - set(cache_key.WRITERS)
    assert len(cache_key.code_revision()) == 16
