"""`cim serve` as a process, for tests that need the real thing (its workers, its HTTP stack)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import Engine

from tests.conftest import free_port

CIM = str(Path(sys.executable).with_name("cim"))


@contextmanager
def cim_serve(
    engine: Engine, workers: int = 1, **env: str
) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """`cim serve` on a free port for the engine's database: its base URL, port and process."""
    port = free_port()
    url = engine.url.render_as_string(hide_password=False)
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [CIM, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env={**os.environ, "CIM_DATABASE_URL": url, **env},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise AssertionError(f"cim serve ended: {log.read()[-2000:].decode()}")
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "cim serve did not start"
            time.sleep(0.2)
        yield base, port, server
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def get_once(port: int, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """One GET on a new connection (so that, with several workers, any may answer)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        return client.get(path, headers={"Connection": "close", **(headers or {})})


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return out
            if not chunk:
                return out
            out += chunk
