"""`cim grade keys`: API keys for the web API."""

from __future__ import annotations

import click

from cim.errors import CimError
from cli.common import command_engine, fail, grade_actor


@click.group("keys")
def grade_keys() -> None:
    """API keys for the web API: viewer, assessor (per city), reviewer, admin."""


@grade_keys.command("create")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["viewer", "assessor", "reviewer", "admin"]), required=True
)
@click.option("--city", "cities", multiple=True, help="A city an assessor may enter values for.")
@click.option(
    "--round",
    "rounds",
    multiple=True,
    help="A round the key may write in (an assessor key needs one; default: every round).",
)
def keys_create(name: str, role: str, cities: tuple[str, ...], rounds: tuple[str, ...]) -> None:
    """Create a key; it is printed once (only its SHA-256 is stored)."""
    from grading.access import create_key

    try:
        key_id, secret = create_key(
            command_engine(), grade_actor(), name, role, list(cities), list(rounds)
        )
    except CimError as exc:
        fail(exc)
    click.echo(f"key {key_id} ({role}) for {name}; hand this over now, it is not stored:", err=True)
    click.echo(secret)


@grade_keys.command("list")
def keys_list() -> None:
    """List keys (never the secrets)."""
    from grading.access import list_keys

    try:
        keys = list_keys(command_engine())
    except CimError as exc:
        fail(exc)
    for k in keys:
        state = f"revoked {k['revoked_at']:%Y-%m-%d}" if k["revoked_at"] else "active"
        scope = " ".join(k["cities"]) + (f" rounds {','.join(k['rounds'])}" if k["rounds"] else "")
        click.echo(f"{k['id']}  {k['role']:<9} {state:<18} {k['name']}  {scope}")


@grade_keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; it stops working at once."""
    from grading.access import revoke_key

    try:
        revoke_key(command_engine(), grade_actor(), key_id)
    except CimError as exc:
        fail(exc)
    click.echo(f"key {key_id} revoked")
