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
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cim import jsonvalues
from cim.errors import CimError
from twin import read, store
from twin.entities import VERSION, format_interval, format_time, parse_path
from twin.observations import NewObservation, number_text
from twin.odata import parse_options
from twin.wire import Wire, WireError

LOG = logging.getLogger("cim.twin")
DEVICE_PREFIX = "devices/"
_DATASTREAM_TOPIC = re.compile(r"^devices/v1\.1/Datastreams\((\d+)\)/Observations$")
MAX_QUEUED = 200_000  # messages waiting to be stored, at most
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
        # the link prefix as it stands inside a JSON string
        self._observations = orjson.dumps(f"{self.base_url}/{VERSION}/Observations").decode()[1:-1]
        self.batch, self.linger = batch, linger
        self.share = share
        self.on_stored = on_stored
        self.queue: deque[tuple[str, bytes]] = deque()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.stored = 0
        self.dropped = 0
        self.wire = Wire(
            host,
            port,
            f"cim-bridge-{os.getpid()}-{id(self):x}",
            credentials,
            on_messages=self._on_messages,
        )
        self.worker = threading.Thread(target=self._drain, name="cim-mqtt-bridge", daemon=True)

    # --- lifecycle

    def start(self, timeout: float = 10) -> None:
        """Connect, subscribe and start storing; waits until subscribed.

        Raises:
            WireError: the broker cannot be reached or refuses the bridge.
        """
        self.wire.connect(timeout)
        self.worker.start()
        try:
            self.wire.subscribe(
                [
                    f"$share/{self.share}/{DEVICE_PREFIX}{VERSION}/+/Observations",
                    f"$share/{self.share}/{DEVICE_PREFIX}{VERSION}/Observations",
                ],
                qos=1,
                timeout=timeout,
            )
        except WireError:
            self.stop()
            raise

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.worker.is_alive():
            self.worker.join(timeout=10)
        self.wire.close()

    def _on_messages(self, messages: list[tuple[str, bytes]]) -> None:
        """A batch read from the broker (its reading thread): queued for storing. A full
        queue holds the reading back, so the broker keeps what waits (bounded there)."""
        while len(self.queue) >= MAX_QUEUED and not self.stopping.is_set():
            self.wake.set()
            time.sleep(0.01)
        self.queue.extend(messages)
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
                body = jsonvalues.loads(payload)
            except jsonvalues.JSONDecodeError as exc:
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
        """The stored Observation as GET /v1.1/Observations(id) answers it."""
        if (
            row.result_number is not None
            and row.phenomenon_end is None
            and row.result_quality is None
            and row.valid_start is None
            and row.parameters is None
        ):  # the common case, written from a template (a dict and orjson took 8 µs)
            # the texts COPY wrote (see twin.observations), when it wrote them
            value = row.number_text or number_text(row.result_number)
            when = row.time_text or format_time(row.phenomenon_start)
            result_time = "null" if row.result_time is None else f'"{format_time(row.result_time)}"'
            link = f"{self._observations}({row.id})"
            return (
                f'{{"@iot.id":{row.id},"@iot.selfLink":"{link}",'
                f'"phenomenonTime":"{when}",'
                f'"resultTime":{result_time},"result":{value},'
                f'"Datastream@iot.navigationLink":"{link}/Datastream",'
                f'"FeatureOfInterest@iot.navigationLink":"{link}/FeatureOfInterest"}}'
            ).encode()
        link = f"{self.base_url}/{VERSION}/Observations({row.id})"
        entity: dict[str, Any] = {
            "@iot.id": row.id,
            "@iot.selfLink": link,
            "phenomenonTime": format_interval(row.phenomenon_start, row.phenomenon_end),
            "resultTime": format_time(row.result_time),
            "result": read.result_value(row.result_number, row.result),
        }
        if row.result_quality is not None:
            entity["resultQuality"] = row.result_quality
        if row.valid_start is not None:
            entity["validTime"] = format_interval(row.valid_start, row.valid_end)
        if row.parameters is not None:
            entity["parameters"] = row.parameters
        entity["Datastream@iot.navigationLink"] = f"{link}/Datastream"
        entity["FeatureOfInterest@iot.navigationLink"] = f"{link}/FeatureOfInterest"
        return jsonvalues.dumps(entity)

    def publish_observations(self, rows: Iterable[NewObservation]) -> None:
        """Each stored Observation to its Datastream's topic and to all Observations', in
        one write."""
        topics = [f"{VERSION}/Observations"]
        payloads = []
        for row in rows:
            topics.append(f"{VERSION}/Datastreams({row.datastream_id})/Observations")
            payloads.append(self.observation_json(row))
        self.wire.publish_twice(topics[1:], topics[0], payloads)

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
                payload = jsonvalues.dumps(entity)
                self.wire.publish(
                    [(f"{VERSION}/{name}", payload), (f"{VERSION}/{name}({ident})", payload)]
                )

    def _publish_stored_observations(self, ids: list[int]) -> None:
        with self.engine.connect() as conn:
            for ident in sorted(set(ids)):
                entity = read.read_entity(
                    conn, parse_path(f"Observations({ident})"), parse_options({}), self.base_url
                )
                row_ds = conn.exec_driver_sql(
                    "SELECT datastream_id FROM twin_observation WHERE id = %(i)s", {"i": ident}
                ).scalar()
                payload = jsonvalues.dumps(entity)
                self.wire.publish(
                    [
                        (f"{VERSION}/Datastreams({row_ds})/Observations", payload),
                        (f"{VERSION}/Observations", payload),
                    ]
                )


def _body_datastream(body: Any) -> int | None:
    if isinstance(body, dict) and isinstance(body.get("Datastream"), dict):
        ident = body["Datastream"].get("@iot.id")
        if isinstance(ident, int) and not isinstance(ident, bool):
            body.pop("Datastream")
            return ident
    return None
