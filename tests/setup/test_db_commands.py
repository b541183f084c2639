"""`cim db start | stop | status | url | upgrade` on a private cluster in a temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from cli.main import main
from tests.conftest import free_port


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="cim-db-cmd-"))
    root.chmod(0o755)
    monkeypatch.delenv("CIM_DATABASE_URL", raising=False)
    monkeypatch.setenv("CIM_DATA_DIR", str(root))
    monkeypatch.setenv("CIM_DB_PORT", str(free_port()))
    yield root
    CliRunner().invoke(main, ["db", "stop"])
    shutil.rmtree(root, ignore_errors=True)


def test_embedded_database_lifecycle(data_dir: Path) -> None:
    runner = CliRunner()
    status = runner.invoke(main, ["db", "status"])
    assert status.exit_code == 1 and "stopped" in status.output
    started = runner.invoke(main, ["db", "start"])
    assert started.exit_code == 0, started.output
    assert (data_dir / "postgres" / "pg" / "PG_VERSION").exists()
    password_file = data_dir / "postgres" / "db-password"
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to postgres
        import pwd

        owner = (data_dir / "postgres" / "pg").stat().st_uid
        assert pwd.getpwuid(owner).pw_name == "postgres"
    again = runner.invoke(main, ["db", "start"])
    assert again.exit_code == 0  # idempotent
    url = runner.invoke(main, ["db", "url"]).output.strip()
    assert url.startswith("postgresql+psycopg://cim:")
    status = runner.invoke(main, ["db", "status"])
    assert status.exit_code == 0 and "revision none" in status.output
    upgraded = runner.invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    status = runner.invoke(main, ["db", "status"])
    assert "(current)" in status.output
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT postgis_version()").fetchone()
        # loopback only, and a password is required
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
    wrong = url.split("://")[0].replace("+psycopg", "") + "://cim:wrong@" + url.split("@")[1]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(wrong)
    stopped = runner.invoke(main, ["db", "stop"])
    assert stopped.exit_code == 0
    assert runner.invoke(main, ["db", "status"]).exit_code == 1


def test_with_a_database_url_no_cluster_is_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIM_DATABASE_URL", "postgresql://someone@127.0.0.1:1/nowhere")
    monkeypatch.setenv("CIM_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(main, ["db", "start"])
    assert result.exit_code == 0 and "CIM_DATABASE_URL is set" in result.output
    assert not (tmp_path / "postgres").exists()
    assert (
        runner.invoke(main, ["db", "url"]).output.strip()
        == "postgresql+psycopg://someone@127.0.0.1:1/nowhere"
    )
    status = runner.invoke(main, ["db", "status"])
    assert status.exit_code == 1 and "unreachable" in status.output
