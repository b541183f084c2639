"""`cim twin`: the live twin's keys, partitions and retention from the command line."""

from __future__ import annotations

import re
from datetime import timedelta

import click

from cim.errors import CimError, InvalidInput
from cli.common import command_engine, fail, print_json

_AGE = re.compile(r"^(\d+)\s*(d|w|y)$")


def parse_age(text: str) -> timedelta:
    """ "400d", "8w" or "2y" as a time span.

    Raises:
        InvalidInput: anything else, or zero.
    """
    match = _AGE.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(
            f"--older-than {text!r}: give a number of days, weeks or years, e.g. 400d, 8w or 2y"
        )
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(days=n * {"d": 1, "w": 7, "y": 365}[unit])


def _sync_broker(engine: object) -> str:
    """Rewrite the embedded broker's passwords and access from the keys (when it runs here)."""
    from cim.settings import TwinSettings
    from twin.access import sync_broker
    from twin.broker import broker_from_settings

    broker = broker_from_settings(TwinSettings())
    if broker is None:
        return "CIM_MQTT_URL names an external broker: give it the device credentials yourself"
    return sync_broker(engine, broker)  # type: ignore[arg-type]


@click.group()
def twin() -> None:
    """The live twin: SensorThings keys, Observation partitions and retention.

    \b
    Devices write with a key of their own, over HTTP and MQTT alike:
      cim twin keys create "PM2.5 station 12" --role device --thing 12
      → HTTP:  Authorization: Bearer KEY   (or HTTP Basic, KEY as password)
      → MQTT:  user KEY_ID, password KEY, on the device port (cim mqtt status)
    Observations are kept in monthly partitions; old months go whole:
      cim twin retain --older-than 400d
    """


@twin.group("keys")
def twin_keys() -> None:
    """Create, list and revoke twin keys (reader, device, manager)."""


@twin_keys.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["reader", "device", "manager"]),
    required=True,
    help="reader: reads when they are private; device: Observations of its Things; "
    "manager: every twin write.",
)
@click.option(
    "--thing",
    "things",
    type=int,
    multiple=True,
    help="A Thing the device key writes for (repeat for several).",
)
def keys_create(name: str, role: str, things: tuple[int, ...]) -> None:
    """Create a key; it is printed once, keep it (only its hashes are stored)."""
    from twin.access import create_key

    engine = command_engine()
    try:
        key_id, secret = create_key(engine, name, role, list(things))
        broker = _sync_broker(engine)
    except CimError as exc:
        fail(exc)
    click.echo(f"key id (MQTT user name): {key_id}")
    click.echo(f"key (shown once; MQTT password): {secret}")
    click.echo(broker, err=True)


@twin_keys.command("list")
def keys_list() -> None:
    """The keys, with their roles and Things (never the keys themselves)."""
    from twin.access import list_keys

    print_json([k.__dict__ for k in list_keys(command_engine())])


@twin_keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: HTTP refuses it at once, and the broker refuses its next publish."""
    from twin.access import revoke_key

    engine = command_engine()
    try:
        revoke_key(engine, key_id)
        broker = _sync_broker(engine)
    except CimError as exc:
        fail(exc)
    click.echo(f"revoked {key_id}; {broker}")


@twin.command("retain")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Drop the months of Observations wholly older than this: 400d, 8w, 2y.",
)
def retain_cmd(older_than: str) -> None:
    """Drop old Observations by whole monthly partitions (fast, and the space is returned
    at once); the latest values of their Datastreams are brought up to date."""
    from twin.observations import retain

    try:
        age = parse_age(older_than)
        dropped = retain(command_engine(), age)
    except CimError as exc:
        fail(exc)
    if dropped:
        click.echo(f"dropped {len(dropped)} partition(s): {', '.join(dropped)}")
    else:
        click.echo(f"no month of Observations is wholly older than {older_than}")


@twin.command("partitions")
def partitions_cmd() -> None:
    """Make the partitions of this month and the next ones ahead of the Observations."""
    from twin.observations import make_ahead

    made = make_ahead(command_engine())
    click.echo(f"partitions ready: {', '.join(made)}")
