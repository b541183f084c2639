"""Dump and restore the whole CIM database with PostgreSQL's own tools (pg_dump's custom format):
every city, dataset, geometry, texture, tile cache, grading round and audit entry.

The dump is written beside its target and renamed when complete, so a crash never leaves a
half-written file under the final name; a restore runs in one transaction, so it lands whole or
not at all. The password goes to the tools in the environment, never on their command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from cim.errors import CimError, DatabaseUnavailable, InvalidInput


def _tool(name: str) -> str:
    """pg_dump or pg_restore: beside the embedded cluster's server binaries, else on PATH."""
    from cim.db.cluster import server_bindir

    try:
        candidate = server_bindir() / name
        if candidate.exists():
            return str(candidate)
    except DatabaseUnavailable:
        pass
    found = shutil.which(name)
    if found is None:
        raise DatabaseUnavailable(
            f"{name} not found: install the PostgreSQL client (Debian: postgresql-client)"
        )
    return found


def _connection(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq options and environment for a SQLAlchemy URL: a libpq URI keeping the URL's
    parameters (host, sslmode, ...) but not the password, which goes in PGPASSWORD."""
    u = make_url(url)
    uri = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    args = [f"--dbname={uri}"]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return args, env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [x for x in result.stderr.strip().splitlines() if x.strip()]
        raise CimError(f"{what} failed: {lines[-1] if lines else 'exit ' + str(result.returncode)}")


def dump(url: str, path: Path) -> int:
    """Write the database to `path` (pg_dump custom format); returns its size in bytes."""
    args, env = _connection(url)
    partial = path.with_name(path.name + ".partial")
    try:
        _run(
            [
                _tool("pg_dump"),
                "--format=custom",
                "--no-owner",
                "--no-acl",
                f"--file={partial}",
                *args,
            ],
            env,
            "pg_dump",
        )
        with partial.open("rb") as f:  # on disk before it takes the final name
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def restore(url: str, path: Path) -> None:
    """Replace the database's contents by a dump's, in one transaction.

    Raises:
        InvalidInput: the file is not a pg_dump custom-format archive.
    """
    with path.open("rb") as f:
        if f.read(5) != b"PGDMP":
            raise InvalidInput(f"{path}: not a dump written by `cim db dump` (pg_dump -Fc)")
    args, env = _connection(url)
    # the extensions (PostGIS) stay as `cim db upgrade` made them: dropping or commenting them
    # needs their owner, which the database's own user often is not
    listed = subprocess.run(
        [_tool("pg_restore"), "--list", str(path)], capture_output=True, text=True, env=env
    )
    if listed.returncode != 0:
        raise InvalidInput(f"{path}: not a readable dump ({listed.stderr.strip()[:200]})")
    keep = [line for line in listed.stdout.splitlines() if " EXTENSION " not in line]
    with tempfile.NamedTemporaryFile("w", suffix=".list") as entries:
        entries.write("\n".join(keep) + "\n")
        entries.flush()
        _run(
            [
                _tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-acl",
                "--single-transaction",
                "--exit-on-error",
                f"--use-list={entries.name}",
                *args,
                str(path),
            ],
            env,
            "pg_restore",
        )
