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


@db.group("replica")
def replica() -> None:
    """Hot standbys of the embedded database, to spread reads (CIM_DATABASE_READ_URLS).

    \b
    Example:
      cim db replica create /var/lib/cim/standby1 --port 54330
      cim db replica start /var/lib/cim/standby1
      CIM_DATABASE_READ_URLS=$(cim db replica url /var/lib/cim/standby1) cim serve
    """


def _embedded_primary() -> Any:
    from cim.db.engine import local_cluster

    settings = DatabaseSettings()
    if not settings.embedded:
        fail(
            "CIM_DATABASE_URL is set: `cim db replica` copies the embedded database only; make "
            "a standby of that server with pg_basebackup -R (see the README, Operations)"
        )
    return local_cluster(settings)


@replica.command("create")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", type=int, required=True, help="Port the standby listens on (loopback).")
def replica_create(directory: Path, port: int) -> None:
    """Make a hot standby of the embedded database in DIRECTORY (pg_basebackup, streaming
    replication), then start it with `cim db replica start DIRECTORY`."""
    primary = _embedded_primary()
    try:
        standby = primary.create_replica(directory.resolve(), port)
    except CimError as exc:
        fail(exc)
    click.echo(
        f"standby of 127.0.0.1:{primary.port} made in {standby.root} (port {port}); "
        f"start it with `cim db replica start {directory}`"
    )


def _standby(directory: Path) -> Any:
    from cim.db.cluster import replica_at

    try:
        return replica_at(directory.resolve())
    except CimError as exc:
        fail(exc)


@replica.command("start")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def replica_start(directory: Path) -> None:
    """Start the standby in DIRECTORY; it catches up with the primary and follows it."""
    standby = _standby(directory)
    try:
        standby.start()
    except CimError as exc:
        fail(exc)
    click.echo(f"standby running on 127.0.0.1:{standby.port}; its URL: cim db replica url")


@replica.command("stop")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def replica_stop(directory: Path) -> None:
    """Stop the standby in DIRECTORY (reads go to the other standbys or the primary)."""
    standby = _standby(directory)
    try:
        standby.stop()
    except CimError as exc:
        fail(exc)
    click.echo("standby stopped")


@replica.command("url")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def replica_url(directory: Path) -> None:
    """Print the standby's URL, for CIM_DATABASE_READ_URLS (it contains the password)."""
    try:
        click.echo(_standby(directory).url())
    except CimError as exc:
        fail(exc)


@replica.command("status")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def replica_status(directory: Path) -> None:
    """Say whether the standby runs, what it has replayed and how far behind the primary it is
    (exit status 1 when it is stopped or unreachable)."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from cim.db.engine import make_engine
    from cim.db.replicas import replay_status

    standby = _standby(directory)
    if not standby.running():
        click.echo(f"standby: stopped (data in {standby.root})")
        sys.exit(1)
    engine = make_engine(standby.url(), connect_timeout=3)
    try:
        state = replay_status(engine)
    except (CimError, OperationalError) as exc:
        click.secho(f"standby unreachable: {exc}", fg="red", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    behind = ""
    primary = _embedded_primary()
    if state["standby"] and primary.running():
        engine = make_engine(primary.url(), connect_timeout=3)
        try:
            with engine.connect() as conn:
                now = conn.execute(
                    text("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
                ).scalar_one()
            behind = f", {max(0, int(now) - int(state['replayed_bytes'] or 0)):,} bytes behind"
        except OperationalError:
            behind = ", primary unreachable"
        finally:
            engine.dispose()
    if not state["standby"]:
        click.echo(f"127.0.0.1:{standby.port}: running, no longer a standby (promoted)")
        return
    age = state["replay_age_s"]
    last = f", last commit replayed {float(age):.1f} s ago" if age is not None else ""
    click.echo(
        f"standby on 127.0.0.1:{standby.port}: running; replayed WAL up to "
        f"{state['replayed']}{behind}{last}"
    )
