"""Running the service under uvicorn: one process, or several that each build their own app."""

from __future__ import annotations

import logging
import os

import uvicorn

from api.app import create_app
from cim.settings import ApiSettings, DatabaseSettings


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
        app if workers == 1 else "api.app:create_app",  # workers import the app themselves
        factory=workers > 1,
        workers=workers,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=False,
    )
