"""docker-compose.yml describes the same service: checked against the settings the app reads
(no Docker engine runs here, so the file is parsed, not started)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from sqlalchemy import make_url

from cim.settings import ApiSettings, DatabaseSettings, IngestSettings

ROOT = Path(__file__).resolve().parents[2]


def _setting_names() -> set[str]:
    names = set()
    for cls in (DatabaseSettings, ApiSettings, IngestSettings):
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def test_compose_runs_postgis_and_the_service_with_known_settings() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    db = doc["services"]["db"]
    cim = doc["services"]["cim"]
    assert db["image"].startswith("postgis/postgis:")
    env = cim["environment"]
    unknown = set(env) - _setting_names()
    assert not unknown, f"compose sets variables the app does not read: {unknown}"
    # the URL points at the db service with the credentials it creates
    url = make_url(env["CIM_DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "db" and url.port == 5432
    assert url.username == db["environment"]["POSTGRES_USER"]
    assert url.password == db["environment"]["POSTGRES_PASSWORD"]
    assert url.database == db["environment"]["POSTGRES_DB"]
    # and the settings classes accept these values as they are
    assert DatabaseSettings(database_url=env["CIM_DATABASE_URL"]).embedded is False
    api = ApiSettings(host=env["CIM_API_HOST"], port=int(env["CIM_API_PORT"]))
    assert any(p.endswith(f":{api.port}") for p in cim["ports"])
    assert "cim db upgrade" in " ".join(cim["command"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    assert "make test" in readme and "make run" in readme
