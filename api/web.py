"""The web pages: the 3D viewer (home page for browsers) and its static files, with CesiumJS
and ECharts (the sensors' charts) served from the npm packages `cesium` and `echarts` that the
set-up installs (no internet, no ion token)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response

WEB = Path(__file__).resolve().parent / "web"
ROOT = Path(__file__).resolve().parents[1]
CESIUM = ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
# the container image puts it elsewhere and says where
ECHARTS = Path(os.environ.get("CIM_API_ECHARTS_DIR") or ROOT / "node_modules" / "echarts" / "dist")


def cesium_dir(configured: Path | None) -> Path | None:
    """Where CesiumJS's built files are, or None when it is not installed."""
    path = configured or CESIUM
    return path if (path / "Cesium.js").exists() else None


def mount(app: FastAPI, configured: Path | None) -> None:
    """Serve the viewer's files, CesiumJS and ECharts."""
    app.mount("/viewer", StaticFiles(directory=WEB), name="viewer")
    cesium = cesium_dir(configured)
    if cesium is not None:
        app.mount("/cesium", StaticFiles(directory=cesium), name="cesium")
    if (ECHARTS / "echarts.min.js").exists():
        app.mount("/echarts", StaticFiles(directory=ECHARTS), name="echarts")


def viewer_page(configured: Path | None) -> Response:
    """The viewer's HTML, or a page that says how to install CesiumJS."""
    if cesium_dir(configured) is None:
        return Response(
            "<!doctype html><meta charset=utf-8><title>CIM</title><p>The 3D viewer needs "
            "CesiumJS: run <code>npm install</code> in the CIM folder (make run does it).",
            status_code=503,
            media_type="text/html",
        )
    return FileResponse(WEB / "index.html", media_type="text/html")
