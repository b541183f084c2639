"""Engines and migrations: where the database is and how it is brought up to date."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from cim import jsonvalues
from cim.db.cluster import LocalCluster, machine_memory, memory_options
from cim.errors import DatabaseUnavailable
from cim.settings import DatabaseSettings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def local_cluster(settings: DatabaseSettings) -> LocalCluster:
    """The embedded cluster these settings describe, its memory sized to the machine."""
    options = memory_options(machine_memory(), settings.db_shared_buffers_mb)
    return LocalCluster(settings.data_dir / "postgres", settings.db_port, options)


def database_url(settings: DatabaseSettings) -> str:
    """`CIM_DATABASE_URL` when set, else the embedded cluster's URL (which must be started)."""
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    return local_cluster(settings).url()


def sqlalchemy_url(url: str) -> str:
    """`url` for SQLAlchemy with psycopg 3 (a libpq `postgresql://` URL is accepted as well)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def read_urls(settings: DatabaseSettings) -> list[str]:
    """The hot standbys reads go to (`CIM_DATABASE_READ_URLS`); none: everything on the primary."""
    return [sqlalchemy_url(u) for u in settings.database_read_urls]


# JSON from the database (properties, units, results) with orjson where that is exact
set_json_loads(jsonvalues.loads)


# every double as its shortest exact text, whatever the server's configuration says (12's
# default; 0, an older default that configuration files carry over, writes 15 digits): a
# stored number is read back, and written as JSON by PostgreSQL (twin), to its last digit
EXACT_FLOATS = "-c extra_float_digits=1"


def make_engine(url: str, connect_timeout: int = 10) -> Engine:
    """A pooled engine for `url`, its sessions without JIT compilation and in the time zone
    UTC unless the URL's own `options` say otherwise: CIM's queries run for milliseconds to
    seconds, and compiling one took longer than it saved (1.5 s of the 3 s that weighed a
    1 M-building city's tiles); and times come back in Python's own UTC, which writes them
    twice as fast as the server's default 'Etc/UTC' zone (every SensorThings time). Numbers
    are always written exactly (`EXACT_FLOATS`)."""
    address = make_url(sqlalchemy_url(url))
    # an unreachable host fails, not hangs
    connect: dict[str, object] = {"connect_timeout": connect_timeout}
    given = address.query.get("options")
    if given is None:
        connect["options"] = f"-c jit=off -c TimeZone=UTC {EXACT_FLOATS}"
    elif isinstance(given, str):  # the operator's options, and numbers written exactly
        connect["options"] = f"{given} {EXACT_FLOATS}"
    return create_engine(
        address,
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=8,
        connect_args=connect,
        hide_parameters=True,  # errors and logs never carry the values a statement was given
    )


def _alembic_config() -> Config:
    from alembic.config import Config  # alembic's import is a fifth of a command's start

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, target: str = "head") -> str:
    """Migrate the database to the newest schema (or to `target`); returns the revision now
    current.

    Raises:
        DatabaseUnavailable: the server is unreachable or lacks PostGIS.
    """
    config = _alembic_config()
    try:
        with engine.begin() as conn:
            available = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
            ).first()
            if not available:
                raise DatabaseUnavailable(
                    "PostGIS is not installed on the database server "
                    "(Debian/Ubuntu: apt-get install postgresql-15-postgis-3)"
                )
            config.attributes["connection"] = conn
            from alembic import command

            command.upgrade(config, target)
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseUnavailable(f"cannot migrate the database: {exc.orig}") from None
    return current_revision(engine) or ""


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, None when never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@functools.cache
def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head
