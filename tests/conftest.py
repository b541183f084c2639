"""Shared fixtures: a throwaway PostgreSQL + PostGIS cluster started by the tests themselves.

With CIM_TEST_DATABASE_URL set, that server is used instead (each test database is created on it,
so the role needs CREATEDB). A database that cannot be started is a test error, never a skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url

from cim.db.cluster import LocalCluster
from cim.db.engine import make_engine, upgrade

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TEMPLATE = "cim_test_template"
_counter = itertools.count()


def shared(relative: str) -> Path:
    """A file of ../shared/data; a missing file fails the test (it is part of the test bed)."""
    path = SHARED / relative
    assert path.exists(), f"test data missing: {path}"
    return path


def free_port() -> int:
    """A TCP port nobody listens on now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostgreSQL server (any database) the tests may create databases on."""
    given = os.environ.get("CIM_TEST_DATABASE_URL")
    if given:
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="cim-test-pg-"))
    root.chmod(0o755)
    cluster = LocalCluster(
        root,
        free_port(),
        {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # each module's databases keep their engines' pools until the session ends (they
            # are dropped then): the whole suite holds a few hundred idle connections
            "max_connections": "500",
        },
    )
    cluster.start()
    try:
        yield cluster.url("postgres")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _admin(server_url: str) -> psycopg.Connection:
    url = make_url(server_url)
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
    )


@pytest.fixture(scope="session")
def template_db(server_url: str) -> str:
    """A migrated, empty database that every test database is copied from."""
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    engine = make_engine(make_url(server_url).set(database=TEMPLATE).render_as_string(False))
    upgrade(engine)
    engine.dispose()
    return TEMPLATE


@pytest.fixture(scope="session")
def new_database(server_url: str, template_db: str) -> Iterator[Callable[[], Engine]]:
    """Factory of fresh, migrated, empty databases; all are dropped at the end of the session."""
    made: list[tuple[str, Engine]] = []

    def make() -> Engine:
        name = f"cim_test_{os.getpid()}_{next(_counter)}"
        with _admin(server_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        engine = make_engine(make_url(server_url).set(database=name).render_as_string(False))
        made.append((name, engine))
        return engine

    yield make
    with _admin(server_url) as conn:
        for name, engine in made:
            engine.dispose()
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(new_database: Callable[[], Engine]) -> Iterator[Engine]:
    """A fresh, migrated, empty database for one test."""
    engine = new_database()
    yield engine
    engine.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true a skipped test is a failure: nothing a feature needs may be skipped."""
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        print(f"\nCI=true: {len(skipped)} test(s) skipped, which CI does not allow")
        session.exitstatus = 1
