"""The demo city's twin: every 5G station, camera, smart street light and IoT sensor of the
city (and some buildings' smart meters) becomes a Thing placed at its object, with a day of
history; loading again adds nothing; and `cim demo sensors --once` publishes a new reading for
each Datastream over MQTT that the service stores."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from cim.settings import TwinSettings
from cli.main import main
from demo.city import generate_city
from demo.twin import demo_datastreams, load_twin
from ingest.pipeline import ingest_files
from tests.browser.conftest import running_service
from twin.broker import LocalBroker

NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)  # noon in Beijing


@pytest.fixture(scope="module")
def city(new_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = new_database()
    path = generate_city(tmp_path_factory.mktemp("demo") / "demo.city.json", buildings=300, seed=3)
    ingest_files(engine, [path.path], "370100")
    return engine


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_the_demo_sensors_become_things_at_their_objects(city: Engine) -> None:
    made = load_twin(city, "370100", seed=3, now=NOW)
    equipment = count(
        city,
        """
        SELECT count(*) FROM city_object WHERE city_code = '370100' AND (
          attributes ->> 'function' IN ('5g_base_station', 'cctv_camera', 'iot_sensor')
          OR (attributes ->> 'function' = 'street_light' AND attributes ->> 'smart' = 'true'))""",
    )
    things = count(city, "SELECT count(*) FROM twin_thing WHERE properties ->> 'demo' = 'true'")
    assert made == things
    assert things > equipment > 0  # the metered buildings come on top
    # each placed at its object: the Location within a metre of the object's point or footprint
    away = count(
        city,
        """
        SELECT count(*) FROM twin_thing t
        JOIN twin_thing_location tl ON tl.thing_id = t.id
        JOIN twin_location l ON l.id = tl.location_id
        JOIN city_object o ON o.city_code = t.city_code AND o.source_id = t.object_id
        WHERE NOT ST_DWithin(l.geom::geography,
                             ST_Force2D(COALESCE(o.footprint, o.bbox))::geography, 1.0)""",
    )
    assert away == 0
    # a day of history, every half hour, for every Datastream
    streams = demo_datastreams(city, "370100")
    assert count(city, "SELECT count(*) FROM twin_observation") == 48 * len(streams)
    lamps = count(
        city,
        """
        SELECT count(*) FROM twin_latest x JOIN twin_datastream d ON d.id = x.datastream_id
        WHERE d.properties ->> 'kind' = 'lamp' AND x.result = 'true'::jsonb""",
    )
    assert lamps == 0, "at noon in Beijing the street lights are off"
    assert load_twin(city, "370100", seed=3, now=NOW) == 0
    assert count(city, "SELECT count(*) FROM twin_thing") == things


def test_the_simulator_publishes_a_round_that_is_stored(
    city: Engine, broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not demo_datastreams(city, "370100"):
        load_twin(city, "370100", seed=3, now=NOW)
    streams = len(demo_datastreams(city, "370100"))
    before = count(city, "SELECT count(*) FROM twin_observation")
    data_dir = Path(broker.root).parent
    twin = TwinSettings(
        data_dir=data_dir, mqtt_port=broker.port, mqtt_device_port=broker.device_port
    )
    monkeypatch.setenv("CIM_DATABASE_URL", city.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CIM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CIM_MQTT_PORT", str(broker.port))
    monkeypatch.setenv("CIM_MQTT_DEVICE_PORT", str(broker.device_port))
    with running_service(city, twin=twin):
        result = CliRunner().invoke(main, ["demo", "sensors", "--once"])
        assert result.exit_code == 0, result.output
        assert f"published {streams} readings" in result.output
        deadline = time.monotonic() + 10
        while count(city, "SELECT count(*) FROM twin_observation") < before + streams:
            assert time.monotonic() < deadline, "the readings did not reach PostgreSQL"
            time.sleep(0.1)
    assert (data_dir / "demo-sensors.key").stat().st_mode & 0o777 == 0o600


def test_the_simulator_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIM_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["demo", "sensors", "--once"])
    assert result.exit_code == 2
    assert "cim mqtt start" in result.output


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CIM_MQTT_URL", raising=False)
    yield
