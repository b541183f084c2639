"""The live twin in the viewer, in real headless Chromium, with CIM's own mosquitto and the
service's bridge: a smart meter on a building is drawn at its place with its latest value; an
Observation written over HTTP, and one a device publishes over MQTT, shows on the page within
2 s; clicking the meter charts its last 24 hours with ECharts (served from node_modules);
buildings are coloured by the meter's latest value. The JSON endpoints behind it are checked
too, and the live feed still answers (keep-alives only) when there is no broker."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image
from playwright.sync_api import Page
from sqlalchemy import Engine, text

from cim.settings import TwinSettings
from demo.city import generate_city
from ingest.pipeline import ingest_files
from tests.browser.conftest import ARTIFACTS, chromium, running_service
from tests.conftest import free_port
from tests.twin.conftest import Client, broker_dir
from twin.access import create_key, sync_broker
from twin.broker import LocalBroker
from twin.store import Writer, create_observations

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
CITY = "370100"
LIVE_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    """CIM's own broker on free ports, for the module (as tests/twin's fixture)."""
    root = broker_dir("cim-test-viewer-mqtt-")
    broker = LocalBroker(root / "mqtt", free_port(), free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def _meter(building: str) -> dict[str, Any]:
    """A Thing on `building` with one Datastream of its energy use."""
    return {
        "name": "smart meter",
        "description": "the building's electricity meter",
        "properties": {"cityObject": {"city": CITY, "id": building}},
        "Datastreams": [
            {
                "name": "meter energy",
                "description": "kWh per hour",
                "observationType": MEASUREMENT,
                "unitOfMeasurement": {
                    "name": "kilowatt hour",
                    "symbol": "kWh",
                    "definition": "http://qudt.org/vocab/unit/KiloW-HR",
                },
                "Sensor": {
                    "name": "meter",
                    "description": "d",
                    "encodingType": "text/html",
                    "metadata": "m",
                },
                "ObservedProperty": {
                    "name": "energy use",
                    "definition": "d",
                    "description": "d",
                },
            }
        ],
    }


@pytest.fixture(scope="module")
def twin(new_database: Any, broker: LocalBroker, tmp_path_factory: Any) -> Iterator[dict[str, Any]]:
    """A small city, the service with its bridge to the broker, a meter on one building with
    a day of readings, and a device key for the meter known to the broker."""
    engine: Engine = new_database()
    city = generate_city(tmp_path_factory.mktemp("demo") / "demo.city.json", buildings=40, seed=5)
    ingest_files(engine, [city.path], CITY, city_name_zh="济南市（示例）")
    with engine.connect() as conn:
        building = conn.execute(
            text(
                "SELECT source_id FROM city_object WHERE city_code = :c AND type = 'Building' "
                "AND footprint IS NOT NULL ORDER BY source_id LIMIT 1"
            ),
            {"c": CITY},
        ).scalar_one()
    settings = TwinSettings(
        data_dir=Path(broker.root).parent,
        mqtt_port=broker.port,
        mqtt_device_port=broker.device_port,
    )
    _, manager = create_key(engine, "manager", "manager")
    with running_service(engine, twin=settings) as base:
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {manager}"})
        made = http.post("/v1.1/Things", json=_meter(building))
        assert made.status_code == 201, made.text
        thing = made.json()["@iot.id"]
        ds = http.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
        now = datetime.now(UTC).replace(microsecond=0)
        readings = [
            {"result": 10.0 + (i % 5), "phenomenonTime": (now - timedelta(hours=i)).isoformat()}
            for i in range(23, 0, -1)
        ]
        readings.append({"result": 12.5, "phenomenonTime": now.isoformat()})
        for reading in readings:
            assert http.post(f"/v1.1/Datastreams({ds})/Observations", json=reading).is_success
        device = create_key(engine, "meter", "device", [thing])
        sync_broker(engine, broker)
        yield {
            "base": base,
            "http": http,
            "engine": engine,
            "thing": thing,
            "ds": ds,
            "building": building,
            "device": device,
            "broker": broker,
        }
        http.close()


def test_the_sensors_of_a_city_with_place_and_latest_value(twin: dict[str, Any]) -> None:
    http = twin["http"]
    http.get(f"/twin/{CITY}/sensors")  # warm: the connection and the plan
    started = time.perf_counter()
    answer = http.get(f"/twin/{CITY}/sensors")
    took = time.perf_counter() - started
    assert answer.status_code == 200
    [sensor] = answer.json()["sensors"]
    assert sensor["thing"] == twin["thing"]
    assert sensor["object"] == twin["building"]
    assert sensor["lon"] == pytest.approx(117, abs=1) and sensor["lat"] == pytest.approx(
        36.6, abs=1
    )
    assert isinstance(sensor["height"], float)
    [ds] = sensor["datastreams"]
    assert ds["id"] == twin["ds"] and ds["unit"] == "kWh" and ds["property"] == "energy use"
    assert ds["result"] == 12.5 and ds["time"].endswith("Z")
    print(f"/twin/{CITY}/sensors answered in {took * 1000:.1f} ms")
    assert http.get("/twin/nowhere/sensors").status_code == 404
    # the latest values alone, as the live feed sends them (the viewer catches up with them)
    latest = http.get(f"/twin/{CITY}/latest").json()
    assert latest == {
        "city": CITY,
        "components": ["datastream", "time", "result"],
        "values": [[twin["ds"], ds["time"], 12.5]],
    }
    assert http.get("/twin/nowhere/latest").status_code == 404


# 5,000 Things with two Datastreams each, every one with a latest value: a city's sensors
_MANY = [
    "INSERT INTO city (code) VALUES ('many')",
    "INSERT INTO twin_sensor (name, description, encoding_type, metadata) "
    "VALUES ('s', 'd', 'text/html', '\"m\"')",
    "INSERT INTO twin_observed_property (name, definition, description) VALUES ('pm', 'd', 'd')",
    "INSERT INTO twin_thing (name, description, city_code, object_id) "
    "SELECT 'meter ' || i, 'd', 'many', 'b' || i FROM generate_series(1, 5000) i",
    "INSERT INTO twin_location (name, description, encoding_type, location, geom) "
    "SELECT t.id::text, 'd', 'application/geo+json', jsonb_build_object('type', 'Point', "
    "'coordinates', jsonb_build_array(117 + t.id * 1e-5, 36.6, 30)), "
    "ST_SetSRID(ST_MakePoint(117 + t.id * 1e-5, 36.6), 4326) "
    "FROM twin_thing t WHERE t.city_code = 'many'",
    "INSERT INTO twin_thing_location (thing_id, location_id) "
    "SELECT t.id, l.id FROM twin_thing t JOIN twin_location l ON l.name = t.id::text "
    "WHERE t.city_code = 'many'",
    "INSERT INTO twin_datastream (name, description, observation_type, unit_of_measurement, "
    "thing_id, sensor_id, observed_property_id) "
    'SELECT \'pm \' || k, \'d\', \'m\', \'{"name": "n", "symbol": "ug/m3", "definition": "d"}\', '
    "t.id, (SELECT max(id) FROM twin_sensor), (SELECT max(id) FROM twin_observed_property) "
    "FROM twin_thing t, generate_series(1, 2) k WHERE t.city_code = 'many'",
    "INSERT INTO twin_latest (datastream_id, observation_id, phenomenon_start, result_number, "
    "first_time, last_time) "
    "SELECT d.id, d.id, now(), d.id * 0.5, now(), now() FROM twin_datastream d "
    "JOIN twin_thing t ON t.id = d.thing_id WHERE t.city_code = 'many'",
]


def test_ten_thousand_datastreams_answer_at_once(twin: dict[str, Any]) -> None:
    with twin["engine"].begin() as conn:
        for statement in _MANY:
            conn.execute(text(statement))
        conn.execute(text("ANALYZE"))
    http = twin["http"]
    http.get("/twin/many/sensors")
    took = []
    for _ in range(5):
        started = time.perf_counter()
        answer = http.get("/twin/many/sensors")
        took.append(time.perf_counter() - started)
    sensors = answer.json()["sensors"]
    assert len(sensors) == 5000 and sum(len(s["datastreams"]) for s in sensors) == 10_000
    assert sensors[0]["height"] == 30 and sensors[0]["datastreams"][0]["unit"] == "ug/m3"
    print(f"/twin/many/sensors, 10,000 Datastreams: {min(took) * 1000:.1f} ms")  # bench/twin.py
    with twin["engine"].begin() as conn:  # results that are not numbers, written as JSON
        first, second = conn.execute(
            text(
                "SELECT d.id FROM twin_datastream d JOIN twin_thing t ON t.id = d.thing_id "
                "WHERE t.city_code = 'many' ORDER BY d.id LIMIT 2"
            )
        ).scalars()
        for ident, value in (
            (first, '"on, \\"really\\""'),
            (second, '{"lamp": [1, null], "note": "a]b"}'),
        ):
            conn.execute(
                text(
                    "UPDATE twin_latest SET result_number = NULL, result = CAST(:v AS jsonb) "
                    "WHERE datastream_id = :d"
                ),
                {"v": value, "d": ident},
            )
    values = http.get("/twin/many/latest").json()["values"]
    assert len(values) == 10_000
    texts = {ds: result for ds, _, result in values if ds in (first, second)}
    assert sorted(texts.values(), key=str) == [
        'on, "really"',
        {"lamp": [1, None], "note": "a]b"},
    ]
    assert all(result == ds * 0.5 for ds, _, result in values if ds not in texts)
    assert [v[0] for v in values] == sorted(v[0] for v in values)


def test_the_latest_value_per_building_to_colour_by(twin: dict[str, Any]) -> None:
    for name in ("energy use", "meter energy"):  # the observed property, or the Datastream
        body = twin["http"].get(f"/twin/{CITY}/colour", params={"datastream": name}).json()
        assert body["objects"] == {twin["building"]: 12.5}
        assert body["datastreams"] == {str(twin["ds"]): twin["building"]}
        assert body["unit"] == "kWh" and body["min"] == body["max"] == 12.5
    other = twin["http"].get(f"/twin/{CITY}/colour", params={"datastream": "noise"}).json()
    assert other["objects"] == {} and other["min"] is None


def _events(base: str, seconds: float) -> Iterator[tuple[str, str]]:
    """(event, data) of the service's live feed, for `seconds` at most."""
    with httpx.stream("GET", f"{base}/twin/events", timeout=seconds) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        event, data = "message", ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line.startswith(":"):
                yield "comment", line
            elif not line and data:
                yield event, data
                event, data = "message", ""


def test_the_live_feed_tells_each_new_value(twin: dict[str, Any]) -> None:
    feed = _events(twin["base"], 10)
    event, data = next(feed)
    assert event == "status" and orjson.loads(data)["live"] is True
    # the meter's reading again (the viewer's tests below start from it), now
    ds = twin["ds"]
    posted = twin["http"].post(f"/v1.1/Datastreams({ds})/Observations", json={"result": 12.5})
    assert posted.status_code == 201
    event, data = next(feed)
    assert event == "message"
    [value] = orjson.loads(data)
    assert value == {"datastream": ds, "time": value["time"], "result": 12.5}
    assert value["time"].startswith(str(datetime.now(UTC).year))
    feed.close()


def test_without_a_broker_the_feed_says_so(new_database: Any) -> None:
    with running_service(new_database()) as base:
        event, data = next(_events(base, 5))
    assert event == "status"
    status = orjson.loads(data)
    assert status["live"] is False and "broker" in status["reason"]


@pytest.fixture(scope="module")
def page(twin: dict[str, Any]) -> Iterator[Page]:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{twin['base']}/?city={CITY}")
        page.wait_for_function("window.cim && window.cim.ready === true", timeout=180_000)
        page.wait_for_function("window.cim.live === true", timeout=30_000)
        assert not errors, errors
        yield page
        assert not errors, errors


# records when the text of an element first includes a value (the clock is the test's own)
_WATCH = """([s, w]) => {
  window.cimShown = null;
  const el = document.querySelector(s);
  new MutationObserver((changes, observer) => {
    if (el.textContent.includes(w)) { window.cimShown = Date.now(); observer.disconnect(); }
  }).observe(el, { childList: true, characterData: true, subtree: true });
}"""


def _shown_within(page: Page, published: float) -> float:
    """Seconds from `published` (time.time) until the element `_WATCH` watches shows its value."""
    page.wait_for_function("window.cimShown !== null", timeout=LIVE_WITHIN_S * 1000 + 3000)
    return float(page.evaluate("window.cimShown")) / 1000 - published


def test_a_sensor_is_drawn_and_clicking_it_charts_its_day(page: Page, twin: dict[str, Any]) -> None:
    sensor = page.evaluate(f"window.cim.sensors.things.get({twin['thing']})")
    assert sensor["object"] == twin["building"]
    label = page.evaluate(f"window.cim.sensors.label({twin['thing']})")
    assert "12.5 kWh" in label
    lon, lat, height = sensor["lon"], sensor["lat"], sensor["height"]
    page.evaluate(f"window.cim.lookDown({lon}, {lat}, {height}, 150)")
    page.wait_for_function("window.cim.tileset.tilesLoaded", timeout=120_000)
    page.wait_for_timeout(500)
    x, y = page.evaluate(f"window.cim.screenPosition({lon}, {lat}, {height})")
    page.mouse.click(x, y)
    page.wait_for_selector("#panel:not([hidden])", timeout=30_000)
    selector = f"#charts [data-datastream='{twin['ds']}'] .latest"
    page.wait_for_function(
        f"document.querySelector(\"{selector}\")?.textContent.includes('12.5')", timeout=10_000
    )
    # the day's readings, drawn by ECharts from its own copy under /echarts
    page.wait_for_function(f"window.cim.charts.get({twin['ds']})?.points() >= 24", timeout=30_000)
    assert page.evaluate("typeof echarts.version") == "string"
    assert page.evaluate(
        f"document.querySelector(\"#charts [data-datastream='{twin['ds']}'] canvas\") !== null"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-sensor-chart.png"))


def test_a_value_written_over_http_shows_within_2_s(page: Page, twin: dict[str, Any]) -> None:
    selector = f"#charts [data-datastream='{twin['ds']}'] .latest"
    page.wait_for_selector(selector)
    page.evaluate(_WATCH, [selector, "31.25 kWh"])
    published = time.time()
    answer = twin["http"].post(
        f"/v1.1/Datastreams({twin['ds']})/Observations", json={"result": 31.25}
    )
    assert answer.status_code == 201
    took = _shown_within(page, published)
    print(f"HTTP write → page: {took * 1000:.0f} ms")
    assert took <= LIVE_WITHIN_S
    assert "31.25 kWh" in page.evaluate(f"window.cim.sensors.label({twin['thing']})")


def test_a_value_a_device_publishes_over_mqtt_shows_within_2_s(
    page: Page, twin: dict[str, Any]
) -> None:
    selector = f"#charts [data-datastream='{twin['ds']}'] .latest"
    key_id, key = twin["device"]
    device = Client(twin["broker"].device_url, key_id, key)
    assert not device.connect().is_failure
    page.evaluate(_WATCH, [selector, "42 kWh"])
    try:
        published = time.time()
        device.publish(f"v1.1/Datastreams({twin['ds']})/Observations", b'{"result": 42.0}')
        took = _shown_within(page, published)
    finally:
        device.close()
    print(f"MQTT publish → page: {took * 1000:.0f} ms")
    assert took <= LIVE_WITHIN_S
    # the chart got the new point too
    assert page.evaluate(f"window.cim.charts.get({twin['ds']}).last()") == 42


# the colour the style gave the feature `id` ("it") and one other feature ("other")
_FEATURE_COLOURS = """(id) => {
  const seen = {};
  const walk = (tile) => {
    const c = tile.content;
    if (tile.contentReady && c && c.featuresLength) {
      for (let i = 0; i < c.featuresLength; i++) {
        const f = c.getFeature(i);
        seen[f.getProperty("id") === id ? "it" : "other"] = f.color.toCssHexString();
      }
    }
    tile.children.forEach(walk);
  };
  walk(window.cim.tileset.root);
  return seen;
}"""


def test_buildings_are_coloured_by_a_datastreams_latest_value(
    page: Page, twin: dict[str, Any]
) -> None:
    sensor = page.evaluate(f"window.cim.sensors.things.get({twin['thing']})")
    x, y = page.evaluate(
        f"window.cim.screenPosition({sensor['lon']}, {sensor['lat']}, {sensor['height']})"
    )
    roof = {"x": x - 3, "y": y + 40, "width": 6, "height": 6}  # beside the sensor's point
    before = Image.open(BytesIO(page.screenshot(clip=roof))).convert("RGB").getpixel((3, 3))
    page.check("input[name=colour][value=sensor]")
    page.select_option("#colour-sensor", "energy use")
    page.wait_for_function(
        f"window.cim.colour && window.cim.colour.values.has('{twin['building']}')",
        timeout=10_000,
    )
    assert page.evaluate(f"window.cim.colour.values.get('{twin['building']}')") == 42
    assert "kWh" in page.inner_text("#colour-legend")
    # the building is drawn in the ramp's colour, the others as they were (white: their own)
    page.wait_for_function(f"({_FEATURE_COLOURS})('{twin['building']}').it !== '#ffffff'")
    coloured = page.evaluate(_FEATURE_COLOURS, twin["building"])
    assert coloured["other"] == "#ffffff", coloured
    page.wait_for_timeout(300)
    after = Image.open(BytesIO(page.screenshot(clip=roof))).convert("RGB").getpixel((3, 3))
    assert sum(abs(a - b) for a, b in zip(before, after, strict=True)) > 60, (before, after)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-coloured-by-sensor.png"))
    # a new value recolours the building at once
    twin["http"].post(f"/v1.1/Datastreams({twin['ds']})/Observations", json={"result": 5.5})
    page.wait_for_function(
        f"window.cim.colour.values.get('{twin['building']}') === 5.5", timeout=5_000
    )
    page.check("input[name=colour][value=surface]")
    assert page.is_hidden("#colour-legend")


def test_clicking_a_building_with_a_sensor_charts_its_datastreams(
    page: Page, twin: dict[str, Any]
) -> None:
    page.click("#close")
    sensor = page.evaluate(f"window.cim.sensors.things.get({twin['thing']})")
    x, y = page.evaluate(
        f"window.cim.screenPosition({sensor['lon']}, {sensor['lat']}, {sensor['height']})"
    )
    page.mouse.click(x, y + 40)  # the roof beside the sensor's point
    page.wait_for_selector("#panel:not([hidden])", timeout=30_000)
    assert page.evaluate("window.cim.selected") == twin["building"]
    assert page.inner_text("#panel h2") == "对象"
    page.wait_for_function(f"window.cim.charts.get({twin['ds']})?.points() >= 24", timeout=30_000)
    assert "5.5 kWh" in page.inner_text(f"#charts [data-datastream='{twin['ds']}'] .latest")


def test_after_a_reconnection_the_page_catches_up_with_the_latest_values(
    page: Page, twin: dict[str, Any]
) -> None:
    """(Last: it changes the latest value the tests above colour by.) What was stored while
    the live feed was down (here: stored without being published)
    reaches the page from /twin/{city}/latest when the feed is back."""
    selector = f"#charts [data-datastream='{twin['ds']}'] .latest"
    page.wait_for_selector(selector)
    create_observations(
        twin["engine"],
        [({"result": 55.75}, "test", twin["ds"])],
        Writer("test", "manager"),
    )
    page.wait_for_timeout(500)
    assert "55.75" not in page.evaluate(f"window.cim.sensors.label({twin['thing']})")
    page.evaluate("catchUp(window.cim.city)")  # what the feed's reconnection runs
    page.wait_for_function(
        f"document.querySelector(\"{selector}\")?.textContent.includes('55.75')", timeout=10_000
    )
    assert "55.75 kWh" in page.evaluate(f"window.cim.sensors.label({twin['thing']})")
