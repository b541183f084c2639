"""`cim db`: the embedded PostgreSQL + PostGIS cluster, or the server CIM_DATABASE_URL names."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cim.errors import CimError
from cim.settings import DatabaseSettings
from cli.common import command_engine, fail


@click.group()
def db() -> None:
    """The database: the embedded cluster, or the server named by CIM_DATABASE_URL."""


def _cluster_or_none(settings: DatabaseSettings) -> Any:
    from cim.db.engine import local_cluster

    if not settings.embedded:
        click.echo("CIM_DATABASE_URL is set: using that server, no embedded cluster.")
        return None
    return local_cluster(settings)


@db.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL + PostGIS (creating it on first use)."""
    settings = DatabaseSettings()
    try:
        cluster = _cluster_or_none(settings)
        if cluster is not None:
            cluster.start()
            click.echo(
                f"embedded database running on 127.0.0.1:{cluster.port} (data in {cluster.root})"
            )
    except CimError as exc:
        fail(exc)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded database."""
    cluster = _cluster_or_none(DatabaseSettings())
    if cluster is not None:
        try:
            cluster.stop()
        except CimError as exc:
            fail(exc)
        click.echo("embedded database stopped")


@db.command("status")
def db_status() -> None:
    """Say whether the database answers and which schema revision it has."""
    from sqlalchemy.exc import OperationalError

    from cim.db.engine import current_revision, head_revision

    settings = DatabaseSettings()
    try:
        cluster = _cluster_or_none(settings)
        if cluster is not None and not cluster.running():
            click.echo(f"embedded database: stopped (data in {cluster.root})")
            sys.exit(1)
        engine = command_engine(settings)
        revision = current_revision(engine)
    except (CimError, OperationalError) as exc:
        click.secho(f"database unreachable: {exc}", fg="red", err=True)
        sys.exit(1)
    state = (
        "current"
        if revision == head_revision()
        else f"needs `cim db upgrade` (head {head_revision()})"
    )
    click.echo(f"database: running; schema revision {revision or 'none'} ({state})")


@db.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the database (it contains the password)."""
    from cim.db.engine import database_url

    try:
        click.echo(database_url(DatabaseSettings()))
    except CimError as exc:
        fail(exc)


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or migrate it to the newest revision."""
    from cim.db.engine import upgrade

    try:
        revision = upgrade(command_engine(DatabaseSettings()))
    except CimError as exc:
        fail(exc)
    click.echo(f"schema at revision {revision}")


@db.command("dump")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def db_dump(file: Path) -> None:
    """Write the whole database (cities, datasets, textures, grading rounds, audit log) to FILE,
    in pg_dump's custom format. The file appears only once complete.

    \b
    Example:
      cim db dump cim-2026-11-29.dump
    """
    from cim.db.backup import dump
    from cim.db.engine import database_url

    try:
        size = dump(database_url(DatabaseSettings()), file)
    except CimError as exc:
        fail(exc)
    click.echo(f"database written to {file} ({size / 1e6:.1f} MB)")


@db.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace the database's contents without asking.")
def db_restore(file: Path, yes: bool) -> None:
    """Replace the database's contents by a dump from `cim db dump`, in one transaction (all of
    it lands, or nothing changes). Restore into a database where `cim db upgrade` has run: the
    PostGIS extension is left as it is.

    \b
    Example:
      cim db restore cim-2026-11-29.dump --yes
    """
    from cim.db.backup import restore
    from cim.db.engine import database_url

    if not yes:
        click.confirm(f"Replace everything in the database by {file}?", abort=True)
    try:
        restore(database_url(DatabaseSettings()), file)
    except CimError as exc:
        fail(exc)
    click.echo(f"database restored from {file}")
