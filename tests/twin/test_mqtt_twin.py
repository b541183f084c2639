"""SensorThings over MQTT with CIM's own mosquitto and the service's bridge: a device publishes
an Observation and it is stored (seen through the HTTP API); a subscriber receives what is
stored, whether it came over HTTP or MQTT, with its id; anonymous publishing, a revoked key and
a bad message store nothing; entity topics tell of new Things."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, text

from cim.settings import TwinSettings
from tests.browser.conftest import running_service
from tests.twin.conftest import Client, thing_body
from twin.access import create_key, revoke_key, sync_broker
from twin.broker import LocalBroker

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture(scope="module")
def live(new_database: Any, broker: LocalBroker) -> Iterator[dict[str, Any]]:
    """The service with its bridge to the broker, a manager key, a Thing with a Datastream and
    a device key for it, known to the broker."""
    engine = new_database()
    twin = TwinSettings(
        data_dir=Path(broker.root).parent,
        mqtt_port=broker.port,
        mqtt_device_port=broker.device_port,
    )
    _, manager = create_key(engine, "manager", "manager")
    with running_service(engine, twin=twin) as base:
        http = httpx.Client(base_url=f"{base}/v1.1", headers={"Authorization": f"Bearer {manager}"})
        made = http.post("/Things", json=thing_body("station"))
        assert made.status_code == 201, made.text
        thing = made.json()["@iot.id"]
        ds = http.get(f"/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
        device_id, device_key = create_key(engine, "station device", "device", [thing])
        sync_broker(engine, broker)
        yield {
            "engine": engine,
            "http": http,
            "ds": ds,
            "thing": thing,
            "base": base,
            "device": (device_id, device_key),
            "broker": broker,
        }
        http.close()


def stored(engine: Engine, ds: int) -> list[float]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT result_number FROM twin_observation WHERE datastream_id = :d "
                    "ORDER BY phenomenon_start, id"
                ),
                {"d": ds},
            ).scalars()
        )


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_the_root_announces_the_mqtt_classes_and_endpoints(live: dict[str, Any]) -> None:
    root = live["http"].get("").json()["serverSettings"]
    create = (
        "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/"
        "observations-creation"
    )
    assert create in root["conformance"]
    assert root[create]["endpoints"] == [live["broker"].device_url]


def test_a_device_publishes_and_the_observation_is_stored_and_told(
    live: dict[str, Any], mqtt_client: Callable[..., Client]
) -> None:
    broker, ds = live["broker"], live["ds"]
    listener = mqtt_client(broker.public_url)
    listener.connect()
    listener.subscribe(f"v1.1/Datastreams({ds})/Observations")
    device_id, device_key = live["device"]
    device = mqtt_client(broker.device_url, device_id, device_key)
    assert not device.connect().is_failure
    device.publish(
        f"v1.1/Datastreams({ds})/Observations",
        orjson.dumps({"result": 21.5, "phenomenonTime": "2026-12-02T08:00:00+08:00"}),
    )
    assert wait_for(lambda: 21.5 in stored(live["engine"], ds))
    # through the HTTP API too
    values = live["http"].get(f"/Datastreams({ds})/Observations").json()["value"]
    assert [v["result"] for v in values if v["result"] == 21.5] == [21.5]
    # the subscriber got the stored Observation (with its id), not the device's raw message
    message = listener.next_message()
    assert message is not None
    topic, payload = message
    told = orjson.loads(payload)
    assert topic == f"v1.1/Datastreams({ds})/Observations"
    assert told["result"] == 21.5 and isinstance(told["@iot.id"], int)
    assert told["phenomenonTime"] == "2026-12-02T00:00:00.000Z"
    assert listener.next_message(0.5) is None, "one message per Observation"


def test_an_observation_posted_over_http_reaches_subscribers(
    live: dict[str, Any], mqtt_client: Callable[..., Client]
) -> None:
    broker, ds = live["broker"], live["ds"]
    listener = mqtt_client(broker.public_url)
    listener.connect()
    listener.subscribe("v1.1/Observations")
    posted = live["http"].post(f"/Datastreams({ds})/Observations", json={"result": 7.25})
    assert posted.status_code == 201
    message = listener.next_message()
    assert message is not None
    told = orjson.loads(message[1])
    assert told["@iot.id"] == posted.json()["@iot.id"] and told["result"] == 7.25


def test_new_things_are_told_on_their_entity_topic(
    live: dict[str, Any], mqtt_client: Callable[..., Client]
) -> None:
    listener = mqtt_client(live["broker"].public_url)
    listener.connect()
    listener.subscribe("v1.1/Things")
    made = live["http"].post("/Things", json={"name": "new one", "description": "d"})
    assert made.status_code == 201
    message = listener.next_message()
    assert message is not None and orjson.loads(message[1])["name"] == "new one"


def test_anonymous_publishing_stores_nothing(
    live: dict[str, Any], mqtt_client: Callable[..., Client]
) -> None:
    broker, ds, engine = live["broker"], live["ds"], live["engine"]
    before = stored(engine, ds)
    anonymous = mqtt_client(broker.device_url)
    assert anonymous.connect().is_failure  # the device port wants a key
    public = mqtt_client(broker.public_url)
    public.connect()
    for topic, value in (
        (f"v1.1/Datastreams({ds})/Observations", 666.0),
        (f"devices/v1.1/Datastreams({ds})/Observations", 667.0),
    ):
        public.client.publish(topic, orjson.dumps({"result": value})).wait_for_publish(5)
    time.sleep(1.0)  # what would have arrived by now
    assert stored(engine, ds) == before


def test_a_bad_message_is_dropped_and_the_next_is_stored(
    live: dict[str, Any], mqtt_client: Callable[..., Client]
) -> None:
    broker, ds, engine = live["broker"], live["ds"], live["engine"]
    device_id, device_key = live["device"]
    device = mqtt_client(broker.device_url, device_id, device_key)
    device.connect()
    topic = f"v1.1/Datastreams({ds})/Observations"
    device.publish(topic, b'{"result": "high"}')
    device.publish(topic, b"not json")
    device.publish(topic, orjson.dumps({"result": 33.5}))
    assert wait_for(lambda: 33.5 in stored(engine, ds))
    assert "high" not in str(stored(engine, ds))


def test_a_revoked_key_publishes_no_more(
    live: dict[str, Any], mqtt_client: Callable[..., Client]
) -> None:
    broker, ds, engine = live["broker"], live["ds"], live["engine"]
    key_id, key = create_key(engine, "to revoke", "device", [live["thing"]])
    sync_broker(engine, broker)
    device = mqtt_client(broker.device_url, key_id, key)
    device.connect()
    topic = f"v1.1/Datastreams({ds})/Observations"
    device.publish(topic, orjson.dumps({"result": 41.0}))
    assert wait_for(lambda: 41.0 in stored(engine, ds))
    revoke_key(engine, key_id)
    sync_broker(engine, broker)
    # (the broker may cut the revoked device off at once: then nothing is even sent)
    device.client.publish(topic, orjson.dumps({"result": 42.0}))
    time.sleep(1.0)
    assert 42.0 not in stored(engine, ds)
    again = mqtt_client(broker.device_url, key_id, key)
    assert again.connect().is_failure


def test_a_datastream_made_after_the_key_takes_its_device_publishes(
    live: dict[str, Any], mqtt_client: Callable[..., Client]
) -> None:
    broker, engine, http = live["broker"], live["engine"], live["http"]
    made = http.post(
        f"/Things({live['thing']})/Datastreams",
        json={
            "name": "noise",
            "description": "d",
            "observationType": MEASUREMENT,
            "unitOfMeasurement": {"name": "n", "symbol": "", "definition": "d"},
            "Sensor": {
                "name": "s",
                "description": "s",
                "encodingType": "text/html",
                "metadata": "m",
            },
            "ObservedProperty": {"name": "noise", "definition": "d", "description": "d"},
        },
    )
    assert made.status_code == 201, made.text
    new = made.json()["@iot.id"]
    device_id, device_key = live["device"]
    device = mqtt_client(broker.device_url, device_id, device_key)
    device.connect()
    device.publish(f"v1.1/Datastreams({new})/Observations", orjson.dumps({"result": 55.5}))
    assert wait_for(lambda: 55.5 in stored(engine, new))
