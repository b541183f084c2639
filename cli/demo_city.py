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
    """Generate the demo city (once) and ingest it as city 370100 with its planning parcels,
    unless already loaded; then create the demo grading round (Shandong's 16 cities, example
    values, Jinan's model indicators computed from the demo city) unless it exists."""
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
    if done.parcels is not None:
        click.echo(
            f"demo planning layer: {done.parcels} parcels with their limits "
            f"(cim analyse indicators --city {DEMO_CITY})"
        )
    if done.round_created:
        click.echo(f"demo grading round {DEMO_ROUND} created (see /grading/dashboard)")
    from demo.twin import load_twin

    try:
        things = load_twin(command_engine(settings), DEMO_CITY, seed)
    except CimError as exc:
        fail(exc)
    if things:
        click.echo(
            f"demo twin: {things} sensors as SensorThings Things, a day of readings each "
            "(cim demo sensors keeps them reporting)"
        )
    else:
        click.echo("demo twin already loaded")


@demo.command("sensors")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between rounds.")
@click.option("--once", is_flag=True, help="Publish one round and stop.")
@click.option("--quiet", is_flag=True, help="Say nothing after starting (make run).")
def demo_sensors(interval: float, once: bool, quiet: bool) -> None:
    """Keep the demo city's sensors reporting: every few seconds, a plausible new reading for
    each of its Datastreams, published over MQTT on the broker's device port as a device
    would (with a key of its own, kept in the data folder). Needs the broker (cim mqtt start)
    and the demo twin (cim demo load); stop it with Ctrl-C."""
    import random
    import time
    from datetime import UTC, datetime
    from urllib.parse import urlsplit

    from cim.settings import TwinSettings
    from demo.load import DEMO_CITY
    from demo.twin import demo_datastreams, readings
    from twin.access import create_key, sync_broker
    from twin.broker import broker_from_settings
    from twin.wire import Wire, WireError

    twin = TwinSettings()
    broker = broker_from_settings(twin)
    if broker is None or not broker.is_running():
        fail("start the broker first: cim mqtt start (the simulator publishes to CIM's own)")
    engine = command_engine()
    streams = demo_datastreams(engine, DEMO_CITY)
    if not streams:
        fail("the demo city has no sensors yet: cim demo load")
    keyfile = twin.data_dir / "demo-sensors.key"
    try:
        key_id, key = keyfile.read_text().split()
    except (OSError, ValueError):
        key_id, key = create_key(engine, "demo simulator", "manager")
        keyfile.write_text(f"{key_id} {key}\n")
        keyfile.chmod(0o600)
        sync_broker(engine, broker)
    where = urlsplit(broker.device_url)
    wire = Wire(
        where.hostname or "127.0.0.1", where.port or 18831, f"cim-demo-{key_id}", (key_id, key)
    )
    try:
        wire.connect()
    except WireError as exc:
        if "not authorised" in str(exc):  # a key file from another database: a new key
            keyfile.unlink(missing_ok=True)
        fail(exc)
    rng = random.Random()
    click.echo(
        f"publishing {len(streams)} demo readings every {interval:g} s to "
        f"{broker.device_url} (Ctrl-C stops)"
    )
    try:
        while True:
            wire.publish(list(readings(streams, rng, datetime.now(UTC))))
            if not quiet:
                click.echo(
                    f"{datetime.now().strftime('%H:%M:%S')} published {len(streams)} readings"
                )
            if once:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        wire.close()
