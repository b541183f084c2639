"""Several `cim serve` processes behind nginx (Debian's package), configured by the file the
repository ships (deploy/nginx/cim.conf): ETag and 304, gzip and the immutable Cache-Control of
versioned tile URLs pass through unchanged, requests are shared among the processes, and when one
process stops, reads go on through the other without a failure."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from ingest.pipeline import ingest_files
from tests.conftest import free_port
from tests.ingest.test_cityjson_files import FILES
from tests.ops.serving import cim_serve
from tests.tiles.conftest import tiles_of

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "cim.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DELFT = next(p for p in FILES if p.name == "delft.city.json")
PREFIX = "/collections/nginx/3dtiles/"
TILE_ROUTE = re.compile(r'cim_http_requests_total\{[^\n]*route="[^"]*/3dtiles/tiles/[^\n]*\} (\S+)')


@pytest.fixture
def nginx_and_two(engine: Engine) -> Iterator[tuple[str, list[str], list[subprocess.Popen[bytes]]]]:
    """nginx on a free port in front of two `cim serve`: its URL, theirs, and their stoppers."""
    assert Path(NGINX).exists(), "nginx is missing: .ci/system-deps.sh installs nginx-light"
    ingest_files(engine, [DELFT], "nginx")
    with (
        cim_serve(engine, CIM_API_TRUSTED_PROXIES="127.0.0.1") as (one, p1, first),
        cim_serve(engine, CIM_API_TRUSTED_PROXIES="127.0.0.1") as (two, p2, second),
        tempfile.TemporaryDirectory() as tmp_name,
    ):
        tmp = Path(tmp_name)
        port = free_port()
        site = CONF.read_text()
        site = site.replace("127.0.0.1:8001", f"127.0.0.1:{p1}")
        site = site.replace("127.0.0.1:8002", f"127.0.0.1:{p2}")
        site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        (tmp / "cim.conf").write_text(site)
        (tmp / "nginx.conf").write_text(
            textwrap.dedent(f"""
            daemon off;
            worker_processes 1;
            pid {tmp}/nginx.pid;
            error_log {tmp}/error.log;
            events {{ worker_connections 256; }}
            http {{
                access_log off;
                client_body_temp_path {tmp}/body;
                proxy_temp_path {tmp}/proxy;
                fastcgi_temp_path {tmp}/fastcgi;
                uwsgi_temp_path {tmp}/uwsgi;
                scgi_temp_path {tmp}/scgi;
                include {tmp}/cim.conf;
            }}
            """)
        )
        check = subprocess.run(
            [NGINX, "-t", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        server = subprocess.Popen([NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
            yield base, [one, two], [first, second]
        finally:
            server.terminate()
            server.wait(timeout=30)


def _tile_requests(base: str) -> float:
    return sum(float(n) for n in TILE_ROUTE.findall(httpx.get(f"{base}/metrics").text))


def test_caching_and_compression_pass_through_nginx(
    nginx_and_two: tuple[str, list[str], list[subprocess.Popen[bytes]]],
) -> None:
    base, (one, two), _ = nginx_and_two
    doc = httpx.get(f"{base}{PREFIX}tileset.json?implicit=false", timeout=60).json()
    uri = next(t["content"]["uri"] for t in tiles_of(doc) if "content" in t)
    assert "?v=" in uri
    with httpx.Client(timeout=60) as client:
        direct = client.get(f"{one}{PREFIX}{uri}", headers={"Accept-Encoding": "gzip"})
        proxied = [
            client.get(f"{base}{PREFIX}{uri}", headers={"Accept-Encoding": "gzip"})
            for _ in range(10)
        ]
        for answer in proxied:
            assert answer.status_code == 200
            assert answer.headers["content-encoding"] == "gzip"
            assert answer.headers["etag"] == direct.headers["etag"]
            assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert answer.content == direct.content  # decoded by httpx: the same tile
        plain = client.get(f"{base}{PREFIX}{uri}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == direct.content
        again = client.get(
            f"{base}{PREFIX}{uri}",
            headers={"If-None-Match": direct.headers["etag"], "Accept-Encoding": "gzip"},
        )
        assert again.status_code == 304 and again.content == b""
    assert _tile_requests(one) > 1 and _tile_requests(two) >= 1  # both processes served


def test_reads_go_on_when_one_process_stops(
    nginx_and_two: tuple[str, list[str], list[subprocess.Popen[bytes]]],
) -> None:
    base, _, (first, _second) = nginx_and_two
    doc = httpx.get(f"{base}{PREFIX}tileset.json?implicit=false", timeout=60).json()
    uris = [t["content"]["uri"] for t in tiles_of(doc) if "content" in t]
    first.terminate()
    first.wait(timeout=30)
    statuses = [
        httpx.get(f"{base}{PREFIX}{uris[n % len(uris)]}", timeout=60).status_code for n in range(30)
    ]
    assert statuses == [200] * 30
    assert httpx.get(f"{base}/health").status_code == 200
