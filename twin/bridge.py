"""The bridge between the MQTT broker and PostgreSQL, one per serving process.

Devices publish Observations on the broker's device port, under `v1.1/Datastreams(N)/
Observations` (SensorThings' MQTT extension); the broker mounts that port's topics under
`devices/`, where only this service reads them, so that subscribers never see a raw device
message as if it were stored. The bridge takes them through an MQTT 5 shared subscription (each
serving process a share), stores them in batches of up to `batch` or every `linger` seconds, one
transaction each, and publishes each stored Observation, with its id and links, to
`v1.1/Datastreams(N)/Observations` and `v1.1/Observations`, where subscribers wait. Writes over
HTTP are published the same way (`notify`).

A message that is not an Observation (bad JSON, a wrong result type, a Datastream that does not
exist) is logged with its topic and dropped, and the rest of its batch is stored: MQTT has no
answer to give the device.
"""

# ruff: noqa: S608  (table and column names come from twin.entities, never from a request;
# every value is a bind parameter)
from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cim.errors import CimError
from twin import read, store
from twin.entities import SETS, VERSION, parse_path
from twin.observations import NewObservation
from twin.odata import parse_options

LOG = logging.getLogger("cim.twin")
DEVICE_PREFIX = "devices/"
_DATASTREAM_TOPIC = re.compile(r"^devices/v1\.1/Datastreams\((\d+)\)/Observations$")
BRIDGE_WRITER = store.Writer("mqtt", "manager")  # the broker's access lists checked the device


class Bridge:
    """Stores what devices publish and publishes what is stored (see the module)."""

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        credentials: tuple[str, str] | None,
        base_url: str,
        *,
        batch: int = 5000,
        linger: float = 0.05,
        share: str = "cim",
        on_stored: Callable[[list[NewObservation]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.host, self.port = host, port
        self.base_url = base_url.rstrip("/")
        self.batch, self.linger = batch, linger
        self.share = share
        self.on_stored = on_stored
        self.queue: deque[tuple[str, bytes]] = deque()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.stored = 0
        self.dropped = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"cim-bridge-{id(self):x}",
            protocol=mqtt.MQTTv5,
        )
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.worker = threading.Thread(target=self._drain, name="cim-mqtt-bridge", daemon=True)

    # --- lifecycle

    def start(self, timeout: float = 10) -> None:
        """Connect, subscribe and start storing; waits until subscribed."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self.worker.start()
        if not self.connected.wait(timeout):
            self.stop()
            raise CimError(
                f"the MQTT broker at {self.host}:{self.port} did not accept the "
                "bridge's connection (is it running? cim mqtt status)"
            )

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.worker.is_alive():
            self.worker.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            LOG.error("the MQTT broker refused the bridge: %s", reason)
            return
        topics = [
            f"{DEVICE_PREFIX}{VERSION}/+/Observations",
            f"{DEVICE_PREFIX}{VERSION}/Observations",
        ]
        options = mqtt.SubscribeOptions(qos=1)
        client.subscribe([(f"$share/{self.share}/{t}", options) for t in topics])
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.queue.append((message.topic, bytes(message.payload)))
        if len(self.queue) >= self.batch:
            self.wake.set()

    # --- storing

    def _drain(self) -> None:
        while not self.stopping.is_set() or self.queue:
            self.wake.wait(self.linger)
            self.wake.clear()
            while self.queue:
                taken: list[tuple[str, bytes]] = []
                while self.queue and len(taken) < self.batch:
                    taken.append(self.queue.popleft())
                try:
                    self.store(taken)
                except Exception:  # noqa: BLE001 - the bridge must outlive any one batch
                    LOG.exception("MQTT batch of %d messages not stored", len(taken))
                    self.dropped += len(taken)

    def store(self, messages: list[tuple[str, bytes]]) -> list[NewObservation]:
        """Store one batch of device messages; returns what was stored."""
        items: list[tuple[Any, str, int | None]] = []
        for topic, payload in messages:
            where = f"MQTT {topic.removeprefix(DEVICE_PREFIX)}"
            match = _DATASTREAM_TOPIC.match(topic)
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                LOG.warning("%s: not JSON (%s); dropped", where, exc)
                self.dropped += 1
                continue
            ds = int(match.group(1)) if match else _body_datastream(body)
            if isinstance(body, dict) and match:
                body.pop("Datastream", None)
            items.append((body, where, ds))
        if not items:
            return []
        errors: dict[int, str] = {}
        for attempt in range(3):
            try:
                rows = store.create_observations(self.engine, items, BRIDGE_WRITER, errors)
                break
            except SQLAlchemyError:
                if attempt == 2:
                    raise
                LOG.warning("MQTT batch failed on the database; retrying", exc_info=True)
                time.sleep(0.5 * (attempt + 1))
                errors.clear()
        for index in sorted(errors):
            LOG.warning("%s; dropped", errors[index])
        self.dropped += len(errors)
        stored = [r for r in rows if r is not None]
        self.stored += len(stored)
        self.publish_observations(stored)
        if self.on_stored is not None:
            self.on_stored(stored)
        return stored

    # --- publishing

    def observation_json(self, row: NewObservation) -> bytes:
        values = asdict(row)
        entity = read.entity_json(SETS["Observations"], values, self.base_url, None)
        return orjson.dumps(entity)

    def publish_observations(self, rows: Iterable[NewObservation]) -> None:
        """Each stored Observation to its Datastream's topic and to all Observations'."""
        for row in rows:
            payload = self.observation_json(row)
            self.client.publish(f"{VERSION}/Datastreams({row.datastream_id})/Observations", payload)
            self.client.publish(f"{VERSION}/Observations", payload)

    def notify(self, what: Any) -> None:
        """After a write over HTTP: Observations as stored rows, or another entity (a
        `store.Created`) read back and published to its set's and its own topic."""
        if isinstance(what, list):
            self.publish_observations(what)
            if self.on_stored is not None:
                self.on_stored(what)
            return
        if not isinstance(what, store.Created):
            return
        try:
            for name, ids in {what.set.name: [what.id], **what.touched}.items():
                if name == "Observations":
                    self._publish_stored_observations(ids)
                    continue
                self._publish_entities(name, ids)
        except (CimError, SQLAlchemyError):
            LOG.exception("could not publish the entities of a write")

    def _publish_entities(self, name: str, ids: list[int]) -> None:
        with self.engine.connect() as conn:
            for ident in sorted(set(ids)):
                entity = read.read_entity(
                    conn, parse_path(f"{name}({ident})"), parse_options({}), self.base_url
                )
                payload = orjson.dumps(entity)
                self.client.publish(f"{VERSION}/{name}", payload)
                self.client.publish(f"{VERSION}/{name}({ident})", payload)

    def _publish_stored_observations(self, ids: list[int]) -> None:
        with self.engine.connect() as conn:
            for ident in sorted(set(ids)):
                entity = read.read_entity(
                    conn, parse_path(f"Observations({ident})"), parse_options({}), self.base_url
                )
                row_ds = conn.exec_driver_sql(
                    "SELECT datastream_id FROM twin_observation WHERE id = %(i)s", {"i": ident}
                ).scalar()
                payload = orjson.dumps(entity)
                self.client.publish(f"{VERSION}/Datastreams({row_ds})/Observations", payload)
                self.client.publish(f"{VERSION}/Observations", payload)


def _body_datastream(body: Any) -> int | None:
    if isinstance(body, dict) and isinstance(body.get("Datastream"), dict):
        ident = body["Datastream"].get("@iot.id")
        if isinstance(ident, int) and not isinstance(ident, bool):
            body.pop("Datastream")
            return ident
    return None
