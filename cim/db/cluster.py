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
REPLICATOR = "cim_replicator"  # the role standbys stream the WAL as (replication only)
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


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its container's limit (cgroup v2
    or v1) when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def memory_options(memory: int, shared_buffers_mb: int | None = None) -> dict[str, str]:
    """Memory settings of a server on a machine of `memory` bytes: shared_buffers a quarter of
    it, from 128 MB to 1 GB (`shared_buffers_mb` when given), effective_cache_size three
    quarters, maintenance_work_mem a sixteenth (at most 1 GB), and WAL room for bulk ingests.
    Measured on the 2-core development machine: PostgreSQL's default of 128 MB (256 MB alike)
    left a city of a million buildings reading every page of a tile from the kernel, and seeding
    it took 36 s instead of 25 s with 1 GB; but from 2 GB up, a 10-million-point LAS ingest took
    twice as long (20 s instead of 9.7 s), so the quarter stops at 1 GB."""
    mb = memory // 2**20
    shared = shared_buffers_mb or min(max(mb // 4, 128), 1024)
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(mb * 3 // 4, shared)}MB",
        "maintenance_work_mem": f"{min(max(mb // 16, 64), 1024)}MB",
        "max_wal_size": "4GB",
    }


def _as_root() -> bool:
    return os.geteuid() == 0


def replica_at(root: Path) -> LocalCluster:
    """The standby `create_replica` made in `root`.

    Raises:
        DatabaseUnavailable: there is none.
    """
    port_file = root / "port"
    if not port_file.exists() or not (root / "pg" / "standby.signal").exists():
        raise DatabaseUnavailable(f"no standby in {root}: make one with `cim db replica create`")
    return LocalCluster(root, int(port_file.read_text().strip()))


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

    @property
    def standby(self) -> bool:
        """True when this cluster is a hot standby of another (`create_replica`)."""
        return (self.pgdata / "standby.signal").exists()

    def create_replica(self, root: Path, port: int) -> LocalCluster:
        """A hot standby of this (running) cluster in `root`, listening on 127.0.0.1:`port`:
        a copy by `pg_basebackup` that streams this cluster's WAL from then on (`-R` writes its
        standby.signal and primary_conninfo). It connects as a replication-only role made for
        the purpose (its password kept next to this cluster, mode 0600), and is not started.

        Raises:
            DatabaseUnavailable: this cluster is not running, `root` holds a cluster already, or
            the copy failed (nothing is left in `root`'s data folder then).
        """
        import psycopg

        if not self.running():
            raise DatabaseUnavailable(f"the database in {self.root} is not running: start it first")
        replica = LocalCluster(root, port, dict(self.server_options))
        if replica.pgdata.exists() and any(replica.pgdata.iterdir()):
            raise DatabaseUnavailable(f"{replica.pgdata} is not empty: a cluster is there already")
        if not self.replication_password_file.exists():
            self.replication_password_file.write_text(secrets.token_urlsafe(24))
            self.replication_password_file.chmod(0o600)
        password = self.replication_password_file.read_text().strip()
        dsn = self.url("postgres").replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(dsn, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATOR,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            # a constant role name; the password is a literal (utility statements take no
            # parameters), quoted by the server's own rules
            quoted = conn.execute("SELECT quote_literal(%s)", (password,)).fetchone()
            assert quoted is not None
            conn.execute(f"{verb} ROLE {REPLICATOR} WITH REPLICATION LOGIN PASSWORD {quoted[0]}")
        root.mkdir(parents=True, exist_ok=True)
        replica.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._chown(replica.pgdata)
        passfile = replica.root / "replication-pgpass"
        passfile.write_text(f"127.0.0.1:{self.port}:*:{REPLICATOR}:{password}\n")
        passfile.chmod(0o600)
        self._chown(passfile)
        result = self._run(
            "env",
            f"PGPASSFILE={passfile}",
            str(server_bindir() / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            REPLICATOR,
            "-D",
            str(replica.pgdata),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-w",
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(replica.pgdata, ignore_errors=True)
            raise DatabaseUnavailable(
                f"pg_basebackup from 127.0.0.1:{self.port} failed: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        # the superuser's password is the primary's (the copy has its roles)
        shutil.copyfile(self.password_file, replica.password_file)
        replica.password_file.chmod(0o600)
        (replica.root / "port").write_text(f"{port}\n")
        return replica

    @property
    def replication_password_file(self) -> Path:
        return self.root / "replication-password"

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
