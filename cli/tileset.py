"""`cim tiles`: a city's 3D Tiles made ahead of requests, or exported as static files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cim.errors import CimError
from cim.settings import DatabaseSettings
from cli.common import advance, command_engine, fail


@click.group()
def tiles() -> None:
    """3D Tiles of a city: fill the cache, or export static files for a CDN."""


def _tile_bar(label: str) -> Any:
    from tqdm import tqdm

    return tqdm(unit="tile", desc=label, disable=not sys.stderr.isatty())


@tiles.command("seed")
@click.option("--city", required=True, help="City code.")
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Processes making tiles (default: one per CPU). Tiles already kept for the city's "
    "data as it is are skipped, so an interrupted seeding goes on where it stopped.",
)
def tiles_seed(city: str, workers: int | None) -> None:
    """Make every tile of a city now, so that no viewer waits for one: read a batch of tiles
    at a time from PostGIS, and keep them in the tile cache."""
    from tiles.availability import Availability
    from tiles.service import TileService

    with _tile_bar("seeding") as bar:
        try:
            service = TileService(command_engine(DatabaseSettings()))
            # a city with over-full tiles is served implicit, their objects in parts: those
            # tiles (tens of MB each, for the explicit tileset only) are made on request; the
            # other tiles and the parts are made now, by one pool of processes
            count = Availability(service).seed_all(
                city, lambda done, total: advance(bar, done - bar.n, total), workers=workers
            )
        except CimError as exc:
            fail(exc)
    click.echo(f"city {city}: {count} tiles ready")


@tiles.command("export")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--city", required=True, help="City code.")
@click.option(
    "--version",
    "version",
    type=click.Choice(["1.1", "1.0"]),
    default="1.1",
    show_default=True,
    help="3D Tiles 1.1 (GLB) or 1.0 (B3DM, for QGIS and engines).",
)
def tiles_export(outdir: Path, city: str, version: str) -> None:
    """Write a city's tileset to OUTDIR as static files (tileset.json, tiles/) for a CDN. A
    city with tiles whose content would pass the content budget (2 MB) is written over cells
    (cells/), its dense tiles' objects given out to finer ones, as the service serves it."""
    from tiles.availability import Availability
    from tiles.service import TileService, format_of

    with _tile_bar("exporting") as bar:
        try:
            service = TileService(command_engine(DatabaseSettings()))
            available = Availability(service)
            fmt = format_of(version)

            def step(n: int, total: int) -> None:
                advance(bar, 1, total)

            if available.over_full(city) > 0:
                count = available.export(city, outdir, fmt, step)
            else:
                count = service.export(city, outdir, step, fmt)
        except CimError as exc:
            fail(exc)
    click.echo(f"city {city}: {count} tiles written to {outdir / 'tileset.json'}")
