"""What the browser tests share: the service on a free port, and headless system Chromium."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import Engine

from api.app import create_app
from cim.settings import ApiSettings, TwinSettings
from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("CIM_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


NO_BROKER = TwinSettings(data_dir=Path("/nonexistent/cim-tests"))  # not a developer's own


@contextmanager
def running_service(
    engine: Engine, settings: ApiSettings | None = None, twin: TwinSettings | None = None
) -> Iterator[str]:
    """The CIM service for `engine` on a free loopback port; yields its base URL. Its live
    twin talks to the broker `twin` describes (by default none)."""
    port = free_port()
    app = create_app(engine=engine, settings=settings, twin_settings=twin or NO_BROKER)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless system Chromium (software WebGL)."""
    assert Path(CHROMIUM).exists(), "Chromium is missing (make test installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
