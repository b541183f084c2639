"""The embedded database: a private PostgreSQL + PostGIS cluster in a folder CIM owns.

`initdb` refuses to run as root, so when CIM runs as root the cluster belongs to the `postgres`
account and every server command runs through `runuser -u postgres`. The cluster listens on
loopback only and requires the password CIM generated at init, stored next to it (mode 0600).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from cim.errors import DatabaseUnavailable

SUPERUSER = "cim"
DATABASE = "cim"
_INSTALL_HINT = (
    "install PostgreSQL and PostGIS (Debian/Ubuntu: apt-get install postgresql "
    "postgresql-15-postgis-3), or set CIM_DATABASE_URL to an existing PostGIS database"
)


def server_bindir() -> Path:
    """The directory of the newest installed PostgreSQL server binaries."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise DatabaseUnavailable(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found: {_INSTALL_HINT}"
    )


def _as_root() -> bool:
    return os.geteuid() == 0


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in `root` listening on 127.0.0.1:`port`."""

    root: Path
    port: int
    server_options: dict[str, str] = field(default_factory=dict)

    @property
    def pgdata(self) -> Path:
        return self.root / "pg"

    @property
    def logfile(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def password_file(self) -> Path:
        return self.root / "db-password"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if _as_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise DatabaseUnavailable(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result

    def _chown(self, path: Path) -> None:
        if _as_root():
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (once) with a generated superuser password."""
        if self.initialised:
            return
        if _as_root():
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise DatabaseUnavailable(
                    f"no 'postgres' system account: {_INSTALL_HINT}"
                ) from None
        bindir = server_bindir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.pgdata)
        password = secrets.token_urlsafe(24)
        fd, pwfile = tempfile.mkstemp(prefix="cim-pw-")
        try:
            os.write(fd, password.encode())
            os.close(fd)
            self._chown(Path(pwfile))
            self._run(
                str(bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-locale",
            )
        finally:
            os.unlink(pwfile)
        self.password_file.write_text(password)
        self.password_file.chmod(0o600)

    def running(self) -> bool:
        """True when the server of this cluster is up."""
        if not self.initialised:
            return False
        result = self._run(
            str(server_bindir() / "pg_ctl"), "-D", str(self.pgdata), "status", check=False
        )
        return result.returncode == 0

    def start(self) -> None:
        """Initialise when needed, start the server, and create the CIM database."""
        self.init()
        if not self.running():
            options = {
                "port": str(self.port),
                "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": f"'{self.pgdata}'",
                **self.server_options,
            }
            opts = " ".join(f"-c {k}={v}" for k, v in options.items())
            if not self.logfile.exists():
                self.logfile.touch()
            self._chown(self.logfile)
            result = self._run(
                str(server_bindir() / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.logfile),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if result.returncode != 0:
                tail = self.logfile.read_text(errors="replace").strip().splitlines()[-5:]
                raise DatabaseUnavailable(
                    f"the embedded PostgreSQL did not start on port {self.port}: "
                    + " | ".join(tail)
                )
        self._ensure_database()

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.running():
            self._run(
                str(server_bindir() / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"
            )

    def url(self, database: str = DATABASE) -> str:
        """SQLAlchemy URL of a database in this cluster."""
        if not self.password_file.exists():
            raise DatabaseUnavailable(f"no embedded database in {self.root}: run `cim db start`")
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def _ensure_database(self) -> None:
        import psycopg

        dsn = self.url("postgres").replace("postgresql+psycopg", "postgresql")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')  # constant identifier
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(
                        f"cannot connect to the embedded database: {exc}"
                    ) from None
                time.sleep(0.2)
