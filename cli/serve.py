"""`cim serve`: the HTTP service."""

from __future__ import annotations

import click

from cim.errors import CimError
from cli.common import fail


@click.command()
@click.option("--host", default=None, help="Interface (default 127.0.0.1, CIM_API_HOST).")
@click.option("--port", default=None, type=int, help="Port (default 8000, CIM_API_PORT).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (e.g. the number of CPUs); each keeps its own tile memory "
    "(CIM_TILES_MEMORY_MB), which hears of every data change at once (LISTEN/NOTIFY).",
)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve OGC API Features, 3D Tiles (and the web pages) over HTTP (uvicorn: httptools on
    uvloop)."""
    from api.serve import serve as run

    try:
        run(host, port, workers)
    except CimError as exc:
        fail(exc)
