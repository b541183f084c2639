"""`cim demo`: the synthetic demo city (and the demo grading round that `make run` loads)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cim.errors import CimError
from cim.settings import DatabaseSettings
from cli.common import command_engine, fail


@click.group()
def demo() -> None:
    """The synthetic demo city (Jinan area, EPSG:4548) that CIM generates itself."""


@demo.command("generate")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--buildings", default=3000, show_default=True, help="Number of buildings.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same city.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cityjson", "cityjsonseq", "citygml"]),
    default="cityjson",
    show_default=True,
)
def demo_generate(out: Path, buildings: int, seed: int, fmt: str) -> None:
    """Write a synthetic city as CityJSON 2.0 (or CityJSONSeq, or CityGML 2.0) to OUT."""
    from tqdm import tqdm

    from demo.city import generate_city

    with tqdm(total=buildings, unit="bldg", disable=not sys.stderr.isatty()) as bar:
        summary = generate_city(out, buildings=buildings, seed=seed, fmt=fmt, progress=bar.update)
    click.echo(f"wrote {summary.total} city objects ({summary.counts}) to {summary.path}")


@demo.command("load")
@click.option("--buildings", default=3000, show_default=True)
@click.option("--seed", default=42, show_default=True)
def demo_load(buildings: int, seed: int) -> None:
    """Generate the demo city (once) and ingest it as city 370100, unless already loaded; then
    create the demo grading round (Shandong's 16 cities, example values, Jinan's model
    indicators computed from the demo city) unless it exists."""
    from demo.load import DEMO_CITY, load_demo
    from demo.round import DEMO_ROUND

    settings = DatabaseSettings()
    try:
        done = load_demo(command_engine(settings), settings.data_dir, buildings, seed)
    except CimError as exc:
        fail(exc)
    if done.objects is None:
        click.echo(f"demo city {DEMO_CITY} already loaded ({done.path.name})")
    else:
        click.echo(f"demo city {DEMO_CITY}: {done.objects} objects loaded")
    if done.round_created:
        click.echo(f"demo grading round {DEMO_ROUND} created (see /grading/dashboard)")
