"""Reads on hot standbys (CIM_DATABASE_READ_URLS): a primary and two standbys made by
`create_replica` (what `cim db replica create` runs) on loopback. An ingest on the primary is
read through the standbys at once, never stale; a standby that has not replayed it is passed
over; and a standby stopped in the middle of a load run costs no request."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from api.app import create_app
from cim.db.cluster import LocalCluster, replica_at
from cim.db.engine import make_engine, upgrade
from cim.db.replicas import ReadEngine
from cim.settings import ApiSettings
from ingest.pipeline import ingest_files
from tests.conftest import free_port, shared
from tests.ops.serving import served_in_thread
from tests.tiles.conftest import tiles_of

HOUSE = shared("citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml")
FAST = {"fsync": "off"}
_TERMINATE_ACTIVE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


@dataclass
class Replicated:
    primary: LocalCluster
    standbys: list[LocalCluster]
    engine: Engine  # the primary's
    reads: ReadEngine
    port: int  # of the HTTP service reading through `reads`


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    root = Path(tempfile.mkdtemp(prefix="cim-test-replicas-"))
    root.chmod(0o755)
    primary = LocalCluster(root / "primary", free_port(), dict(FAST))
    standbys: list[LocalCluster] = []
    try:
        primary.start()
        engine = make_engine(primary.url())
        upgrade(engine)
        for n in (1, 2):
            standby = primary.create_replica(root / f"standby{n}", free_port())
            standbys.append(standby)
            replica_at(standby.root).start()  # as `cim db replica start` finds it
        standby_engines = [make_engine(s.url(), connect_timeout=3) for s in standbys]
        reads = ReadEngine(engine, standby_engines, wait_s=0.5, retry_s=1.0)
        settings = ApiSettings()
        app = create_app(engine=engine, settings=settings, reads=reads)
        with served_in_thread(app, settings) as port:
            yield Replicated(primary, standbys, engine, reads, port)
        reads.dispose()
        engine.dispose()
    finally:
        for cluster in [*standbys, primary]:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _served(r: Replicated) -> dict[str, int]:
    return dict(r.reads.served)


def test_standbys_are_copies_that_follow_the_primary(replicated: Replicated) -> None:
    for standby in replicated.standbys:
        assert standby.standby and standby.running()
        probe = make_engine(standby.url())
        try:
            with probe.connect() as conn:
                assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
                # the schema came with the copy: the standby holds CIM's tables
                assert conn.execute(text("SELECT to_regclass('city')")).scalar() == "city"
        finally:
            probe.dispose()


def test_an_ingest_is_read_through_the_standbys_at_once(replicated: Replicated) -> None:
    base = f"http://127.0.0.1:{replicated.port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(3):
            city = f"lyon{n}"
            before = _served(replicated)
            ingest_files(replicated.engine, [HOUSE], city, crs="EPSG:3946")
            # at once, no pause: a standby that has not replayed the ingest would answer 404
            tileset = client.get(f"/collections/{city}/3dtiles/tileset.json")
            assert tileset.status_code == 200, tileset.text
            uris = [t["content"]["uri"] for t in tiles_of(tileset.json()) if "content" in t]
            assert uris
            for uri in uris:
                tile = client.get(f"/collections/{city}/3dtiles/{uri}")
                assert tile.status_code == 200 and tile.content[:4] == b"glTF"
            items = client.get(f"/collections/{city}/items", params={"limit": 100})
            assert items.status_code == 200 and items.json()["numberMatched"] >= 1
            after = _served(replicated)
            assert after["standby"] > before["standby"], "no read went to a standby"
        # the grading dashboard's reads go there too
        before = _served(replicated)
        rounds = client.get("/grading/rounds")
        assert rounds.status_code == 200 and rounds.json() == []
        assert _served(replicated)["standby"] == before["standby"] + 1


def test_a_standby_behind_the_primary_is_passed_over(replicated: Replicated) -> None:
    """Replay paused on both standbys: a write on the primary is still read at once (from the
    primary, after waiting wait_s for the standbys); once replay resumes, from the standbys."""
    probes = [make_engine(s.url()) for s in replicated.standbys]
    try:
        for probe in probes:
            with probe.connect() as conn:
                conn.execute(text("SELECT pg_wal_replay_pause()"))
        with replicated.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS replica_probe (n int)"))
            conn.execute(text("INSERT INTO replica_probe VALUES (42)"))
        before = _served(replicated)
        started = time.monotonic()
        with replicated.reads.connect() as conn:
            assert conn.execute(text("SELECT max(n) FROM replica_probe")).scalar() == 42
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
        assert time.monotonic() - started >= replicated.reads.wait_s * 0.9
        assert _served(replicated)["primary"] == before["primary"] + 1
    finally:
        for probe in probes:
            with probe.connect() as conn:
                conn.execute(text("SELECT pg_wal_replay_resume()"))
            probe.dispose()
    with replicated.reads.connect() as conn:
        assert conn.execute(text("SELECT max(n) FROM replica_probe")).scalar() == 42
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar() is True


def test_a_standby_stopped_under_load_costs_no_request(replicated: Replicated) -> None:
    ingest_files(replicated.engine, [HOUSE], "loaded", crs="EPSG:3946")
    base = f"http://127.0.0.1:{replicated.port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        tileset = client.get("/collections/loaded/3dtiles/tileset.json").json()
    urls = ["/collections/loaded/3dtiles/tileset.json", "/collections/loaded/items?limit=5"] + [
        f"/collections/loaded/3dtiles/{t['content']['uri']}"
        for t in tiles_of(tileset)
        if "content" in t
    ]
    stop_at = time.monotonic() + 1.5
    end = [time.monotonic() + 60.0]  # set once the standby is stopped
    failures: list[str] = []
    done = [0]
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            i = 0
            while time.monotonic() < end[0]:
                url = urls[i % len(urls)]
                i += 1
                try:
                    status = client.get(url).status_code
                except httpx.HTTPError as exc:
                    status, url = 0, f"{url}: {exc}"
                with lock:
                    done[0] += 1
                    if status != 200:
                        failures.append(f"{status} {url}")

    workers = [threading.Thread(target=load) for _ in range(6)]
    for w in workers:
        w.start()
    lost = replicated.standbys[0]
    before = _served(replicated)
    # first, reads of the other standby are cut off half-way (their backends terminated as they
    # run); then the first standby is stopped for good
    killer = make_engine(replicated.standbys[1].url())
    with killer.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        # at least 1.5 s, and until a read was cut off (at most 5 s more)
        while time.monotonic() < stop_at or (
            replicated.reads.served["lost"] == before["lost"] and time.monotonic() < stop_at + 5
        ):
            conn.execute(_TERMINATE_ACTIVE)
    killer.dispose()
    lost.stop()
    end[0] = time.monotonic() + 2.0
    assert not lost.running()
    for w in workers:
        w.join()
    after = _served(replicated)
    print(f"load run: {done[0]} requests, {after['lost'] - before['lost']} lost with the standby")
    assert failures == [], failures[:10]
    assert done[0] > 100, f"only {done[0]} requests in the run"
    assert after["standby"] > before["standby"]
    assert after["lost"] > before["lost"], "no read was cut off: the test proved nothing"
    lost.start()  # back for the other tests; reads find it again after retry_s
    time.sleep(replicated.reads.retry_s)
    with replicated.reads.connect() as conn:
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar() is True


def test_a_read_cut_off_on_a_standby_runs_again_elsewhere(replicated: Replicated) -> None:
    calls: list[bool] = []

    def work(conn: Any) -> int:
        calls.append(bool(conn.execute(text("SELECT pg_is_in_recovery()")).scalar()))
        if len(calls) == 1:  # the first run loses its connection half-way
            conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return int(conn.execute(text("SELECT 7")).scalar())

    before = _served(replicated)
    assert replicated.reads.run(work) == 7
    assert len(calls) == 2 and calls[0] is True
    assert _served(replicated)["lost"] == before["lost"] + 1


def test_read_urls_are_read_from_the_environment(monkeypatch: Any) -> None:
    from cim.db.engine import read_urls
    from cim.settings import DatabaseSettings

    monkeypatch.setenv(
        "CIM_DATABASE_READ_URLS", "postgresql://cim:a@s1:5432/cim, postgresql://cim:b@s2/cim"
    )
    urls = read_urls(DatabaseSettings())
    assert urls == ["postgresql+psycopg://cim:a@s1:5432/cim", "postgresql+psycopg://cim:b@s2/cim"]
    monkeypatch.setenv("CIM_DATABASE_READ_URLS", "mysql://x@h/db")
    with pytest.raises(ValueError, match="not a postgresql:// URL"):
        DatabaseSettings()


def test_compose_has_a_standby_the_service_reads_from() -> None:
    import yaml
    from sqlalchemy import make_url

    from cim.settings import DatabaseSettings

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "docker-compose.yml").read_text())
    db, standby, cim = (doc["services"][n] for n in ("db", "db-standby", "cim"))
    assert standby["image"] == db["image"]
    # the standby copies the primary as the role the primary's init script makes
    script_mount = next(v for v in db["volumes"] if "docker-entrypoint-initdb.d" in v)
    script = (root / script_mount.split(":")[0]).read_text()
    assert "CREATE ROLE cim_replicator WITH REPLICATION" in script
    assert "host replication cim_replicator" in script
    start = " ".join(standby["entrypoint"])
    assert "pg_basebackup -h db -U cim_replicator" in start and " -R " in start
    assert standby["environment"]["PGPASSWORD"] == db["environment"]["REPLICATION_PASSWORD"]
    # the service reads from it, with the superuser the copy carries over
    reads = DatabaseSettings(
        database_read_urls=cim["environment"]["CIM_DATABASE_READ_URLS"]
    ).database_read_urls
    assert len(reads) == 1
    url = make_url(reads[0])
    assert url.host == "db-standby" and url.username == db["environment"]["POSTGRES_USER"]
    assert url.password == db["environment"]["POSTGRES_PASSWORD"]
    assert "db-standby" in cim["depends_on"]


def test_cim_db_replica_commands(monkeypatch: Any) -> None:
    """`cim db replica create|start|status|url|stop` on the embedded primary of `cim db start`."""
    from click.testing import CliRunner

    from cli.main import main

    # not pytest's tmp_path: its parents are closed to the `postgres` account
    tmp_path = Path(tempfile.mkdtemp(prefix="cim-test-replica-cli-"))
    tmp_path.chmod(0o755)
    monkeypatch.setenv("CIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CIM_DB_PORT", str(free_port()))
    monkeypatch.delenv("CIM_DATABASE_URL", raising=False)
    runner = CliRunner()
    standby = tmp_path / "standby"
    port = free_port()

    def cim(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    try:
        started = cim("db", "start")
        assert started.exit_code == 0, started.output
        made = cim("db", "replica", "create", str(standby), "--port", str(port))
        assert made.exit_code == 0, made.output
        assert (standby / "pg" / "standby.signal").exists()
        again = cim("db", "replica", "create", str(standby), "--port", str(port))
        assert again.exit_code == 2 and "not empty" in again.output
        assert cim("db", "replica", "status", str(standby)).exit_code == 1  # not started yet
        assert cim("db", "replica", "start", str(standby)).exit_code == 0
        status = cim("db", "replica", "status", str(standby))
        assert status.exit_code == 0 and "replayed WAL up to" in status.output, status.output
        url = cim("db", "replica", "url", str(standby)).output.strip()
        assert url.endswith(f"@127.0.0.1:{port}/cim")
        assert cim("db", "replica", "stop", str(standby)).exit_code == 0
        missing = cim("db", "replica", "start", str(tmp_path / "nothing"))
        assert missing.exit_code == 2 and "no standby in" in missing.output
    finally:
        if (standby / "port").exists():
            cim("db", "replica", "stop", str(standby))
        cim("db", "stop")
        shutil.rmtree(tmp_path, ignore_errors=True)
