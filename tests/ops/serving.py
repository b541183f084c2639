"""The service on a real socket: `cim serve` as a process, for tests that need the real thing
(its workers, its HTTP stack), or an app under uvicorn in a thread, configured as `cim serve`
configures it (its HTTP protocol, deadlines and limits)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine

from api.serve import server_options
from cim.settings import ApiSettings
from tests.conftest import free_port

CIM = str(Path(sys.executable).with_name("cim"))


@contextmanager
def cim_serve(
    engine: Engine, workers: int = 1, log_path: Path | None = None, **env: str
) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """`cim serve` on a free port for the engine's database: its base URL, port and process
    (its standard error, the log, kept at `log_path` when given)."""
    port = free_port()
    url = engine.url.render_as_string(hide_password=False)
    log = tempfile.TemporaryFile() if log_path is None else log_path.open("w+b")
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


@contextmanager
def served_in_thread(app: Any, settings: ApiSettings, **config: Any) -> Iterator[int]:
    """`app` under uvicorn in a thread on a free port, with `cim serve`'s server options for
    `settings` (and any other uvicorn `config`); yields the port, and stops the server after."""
    port = free_port()
    options: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "off"}
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            **{**options, **config},
            **server_options(settings),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def get_once(port: int, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """One GET on a new connection (so that, with several workers, any may answer)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        return client.get(path, headers={"Connection": "close", **(headers or {})})


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        return until_closed(sock)
