"""Fixtures of the twin tests: CIM's own mosquitto on free ports, and MQTT clients that wait on
what a test waits for (a CONNACK, a PUBACK, a message) instead of sleeping."""

from __future__ import annotations

import itertools
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_port
from twin.broker import LocalBroker

_ids = itertools.count()
WAIT = 5.0  # seconds anything expected may take; reached only when a test fails


def broker_dir(prefix: str) -> Path:
    """A folder the broker's own account can reach: pytest's tmp_path sits under a folder only
    root may enter (0700), and mosquitto, started as root, runs as `mosquitto`."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


class Client:
    """A paho client (MQTT 5 unless told) that records its CONNACK, PUBACKs and messages."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        where = urlsplit(url)
        self.host, self.port = where.hostname or "127.0.0.1", where.port or 1883
        self.protocol = protocol
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{next(_ids)}",
            protocol=protocol,
            reconnect_on_failure=False,  # a refused or cut-off client is what tests look at
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack: Any = None
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = self._on_ack

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = reason
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        self.disconnected.set()

    def _on_ack(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._acked:
            self._acks[mid] = reason
            self._acked.notify_all()

    def _ack(self, mid: int) -> Any:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, WAIT), "no acknowledgement"
            return self._acks.pop(mid)

    def connect(self) -> Any:
        """Connect and return the CONNACK's reason; a refused client stops trying again."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(WAIT), f"no CONNACK from port {self.port}"
        return self.connack

    def subscribe(self, topic: str) -> Any:
        """Subscribe at QoS 1 and return the SUBACK's reason codes."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None, f"not connected: cannot subscribe to {topic}"
        return self._ack(mid)

    def publish(self, topic: str, payload: bytes) -> Any:
        """Publish at QoS 1 and return the PUBACK's reason (MQTT 5 says when it is refused)."""
        info = self.client.publish(topic, payload, qos=1)
        assert info.mid is not None
        return self._ack(info.mid)

    def next_message(self, timeout: float = WAIT) -> tuple[str, bytes] | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_client() -> Iterator[Callable[..., Client]]:
    """Factory of clients, all closed at the end of the test."""
    made: list[Client] = []

    def make(
        url: str, username: str | None = None, password: str | None = None, **kw: Any
    ) -> Client:
        client = Client(url, username, password, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    """CIM's own broker on free ports, for the module; stopped and removed at its end."""
    root = broker_dir("cim-test-mqtt-")
    broker = LocalBroker(root / "mqtt", free_port(), free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def thing_body(
    name: str = "t",
    lon: float = 117.0,
    lat: float = 36.6,
    streams: tuple[tuple[str, str], ...] = (("pm", MEASUREMENT),),
) -> dict[str, Any]:
    """A Thing at (lon, lat) with a Datastream per (name, observation type), to POST."""
    return {
        "name": name,
        "description": name,
        "Locations": [
            {
                "name": name,
                "description": "d",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [lon, lat]},
            }
        ],
        "Datastreams": [
            {
                "name": stream,
                "description": stream,
                "observationType": kind,
                "unitOfMeasurement": {"name": "n", "symbol": "", "definition": "d"},
                "Sensor": {
                    "name": "s",
                    "description": "s",
                    "encodingType": "text/html",
                    "metadata": "m",
                },
                "ObservedProperty": {"name": stream, "definition": "d", "description": "d"},
            }
            for stream, kind in streams
        ],
    }
