"""The viewer's live twin: where a city's sensors are with their latest values, the latest value
per building of one kind of Datastream (to colour buildings by), and Server-Sent Events that
carry each stored Observation to every open viewer.

One `LiveHub` per process subscribes to the broker's `v1.1/Datastreams(N)/Observations` when
the first browser connects and hands each message to every open stream; a stream keeps only the
newest value of each Datastream until it is sent (at most one event per ~250 ms), so a slow
browser loses old values and never grows the process's memory."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Engine, text

from api.live import broker_address
from api.sensorthings import check_reader
from cim.db.cities import require_city
from cim.errors import CimError
from cim.settings import TwinSettings

LOG = logging.getLogger("cim.twin")
# each Datastream's own topic: it names the Datastream, which the Observation's JSON does not
TOPIC = "v1.1/+/Observations"
COALESCE_S = 0.25  # a stream sends at most one batch in this time: one value per Datastream
KEEPALIVE_S = 15.0  # a comment on a quiet stream, so that proxies keep it open
LIFETIME_S = 300.0  # then the browser reconnects (EventSource does): no stream holds shutdown
PENDING = 10_000  # Datastreams a stream holds values for before it drops the oldest
RETRY_BROKER_S = 5.0  # a missing broker is looked for again, at most this often
_DATASTREAM = re.compile(r"^v1\.1/Datastreams\((\d+)\)/Observations$")

# the whole answer built by PostgreSQL as JSON (10,000 Datastreams: 30 ms, where rows unpacked
# and written in Python took 100): each Thing of the city at its first Location, a point's own
# coordinates (the height: its GeoJSON's third one) or a point on the surface of any other
# geometry (GEOS's work, kept off the common case); its Datastreams in id order with their
# latest values from twin_latest, never the history; times in UTC to the millisecond
_SENSORS = text("""
    WITH thing AS (
      SELECT DISTINCT ON (t.id) t.id, t.name, t.object_id, l.geom,
             coalesce(l.location -> 'coordinates', l.location #> '{geometry,coordinates}') AS c
      FROM twin_thing t
      JOIN twin_thing_location tl ON tl.thing_id = t.id
      JOIN twin_location l ON l.id = tl.location_id
      WHERE t.city_code = :city AND l.geom IS NOT NULL
      ORDER BY t.id, l.id),
    streams AS (
      SELECT d.thing_id, json_agg(json_build_object(
               'id', d.id, 'name', d.name, 'unit', d.unit_of_measurement ->> 'symbol',
               'property', o.name,
               'time', to_char(x.phenomenon_start AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'result', coalesce(to_jsonb(x.result_number), x.result)) ORDER BY d.id) AS list
      FROM thing t
      JOIN twin_datastream d ON d.thing_id = t.id
      LEFT JOIN twin_observed_property o ON o.id = d.observed_property_id
      LEFT JOIN twin_latest x ON x.datastream_id = d.id
      GROUP BY d.thing_id)
    SELECT CAST(json_build_object('city', CAST(:city AS text), 'sensors', coalesce(json_agg(
             json_build_object(
               'thing', t.id, 'name', t.name, 'object', t.object_id,
               'lon', p.lon, 'lat', p.lat,
               'height', CASE WHEN p.point AND jsonb_typeof(t.c -> 2) = 'number'
                              THEN (t.c ->> 2)::float8 END,
               'datastreams', coalesce(s.list, '[]'))
             ORDER BY t.id), '[]')) AS text)
    FROM thing t
    CROSS JOIN LATERAL (
      SELECT GeometryType(t.geom) = 'POINT' AS point,
             CASE WHEN GeometryType(t.geom) = 'POINT' THEN ST_X(t.geom)
                  ELSE ST_X(ST_PointOnSurface(t.geom)) END AS lon,
             CASE WHEN GeometryType(t.geom) = 'POINT' THEN ST_Y(t.geom)
                  ELSE ST_Y(ST_PointOnSurface(t.geom)) END AS lat) p
    LEFT JOIN streams s ON s.thing_id = t.id""")
# the latest value of each of a city's Datastreams as [datastream, time, result] rows of JSON
# text, joined by PostgreSQL from what twin_latest keeps written (no history is read, and no
# time is formatted here: that took half of this answer's time for 10,000)
_LATEST = text("""
    SELECT string_agg(x.latest_row, ',' ORDER BY x.datastream_id)
    FROM twin_latest x
    WHERE x.datastream_id IN (
      SELECT d.id FROM twin_thing t JOIN twin_datastream d ON d.thing_id = t.id
      WHERE t.city_code = :city)""")
LATEST_COMPONENTS = ["datastream", "time", "result"]
_COLOUR = text("""
    SELECT DISTINCT ON (t.object_id) t.object_id, d.id, x.result_number,
           d.unit_of_measurement ->> 'symbol' AS unit
    FROM twin_thing t
    JOIN twin_datastream d ON d.thing_id = t.id
    JOIN twin_observed_property p ON p.id = d.observed_property_id
    JOIN twin_latest x ON x.datastream_id = d.id
    WHERE t.city_code = :city AND t.object_id IS NOT NULL AND x.result_number IS NOT NULL
      AND (d.name = :name OR p.name = :name)
    ORDER BY t.object_id, x.phenomenon_start DESC, d.id""")


def city_sensors(engine: Engine, city: str) -> bytes:
    """Every Thing of a city that has a Location, as JSON: where it is, the city object it is
    on, and its Datastreams with their latest values (from twin_latest, never the history).

    Raises:
        NotFound: no such city.
    """
    with engine.connect() as conn:
        require_city(conn, city)
        return conn.execute(_SENSORS, {"city": city}).scalar_one().encode()


def city_latest(engine: Engine, city: str) -> bytes:
    """The latest value of each Datastream of a city's Things that has one, as JSON:
    `{"city": C, "components": ["datastream", "time", "result"], "values": [[...], ...]}`
    (rows, as SensorThings' Data Array writes them: 10,000 objects were twice the bytes).

    Raises:
        NotFound: no such city.
    """
    with engine.connect() as conn:
        require_city(conn, city)
        rows = conn.execute(_LATEST, {"city": city}).scalar_one()
    head = orjson.dumps({"city": city, "components": LATEST_COMPONENTS})[:-1]
    return b'%s,"values":[%s]}' % (head, (rows or "").encode())


def city_colour(engine: Engine, city: str, name: str) -> dict[str, Any]:
    """The latest number per city object of the Datastreams named `name` (or observing the
    property `name`), with their range and which Datastream gives each object's value.

    Raises:
        NotFound: no such city.
    """
    with engine.connect() as conn:
        require_city(conn, city)
        rows = conn.execute(_COLOUR, {"city": city, "name": name}).all()
    values = [r.result_number for r in rows]
    return {
        "city": city,
        "datastream": name,
        "unit": next((r.unit for r in rows if r.unit), None),
        "min": min(values, default=None),
        "max": max(values, default=None),
        "objects": {r.object_id: r.result_number for r in rows},
        "datastreams": {str(r.id): r.object_id for r in rows},
    }


def observation_event(topic: str, payload: bytes) -> dict[str, Any] | None:
    """What a browser needs of an Observation published on its Datastream's topic: the
    Datastream, its time and result."""
    found = _DATASTREAM.match(topic)
    if found is None:
        return None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    return {
        "datastream": int(found.group(1)),
        "time": body.get("phenomenonTime"),
        "result": body.get("result"),
    }


class Stream:
    """One browser's stream: the newest value of each Datastream not yet sent to it. Filled by
    the hub's MQTT thread, emptied by the stream's task on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = PENDING) -> None:
        self.loop = loop
        self.limit = limit
        self.wake = asyncio.Event()
        self.closed = False
        self.dropped = 0
        self._pending: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._signalled = False

    def offer(self, event: dict[str, Any]) -> None:
        """Keep `event` as its Datastream's newest value (from any thread)."""
        ds = event["datastream"]
        with self._lock:
            if self._pending.pop(ds, None) is None and len(self._pending) >= self.limit:
                self._pending.pop(next(iter(self._pending)))  # the oldest waiting
                self.dropped += 1
            self._pending[ds] = event
            if self._signalled:
                return
            self._signalled = True
        self._signal()

    def close(self) -> None:
        """End the stream (the app is stopping)."""
        self.closed = True
        self._signal()

    def _signal(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.wake.set)
        except RuntimeError:  # the loop has closed: nobody is reading
            pass

    def take(self) -> list[dict[str, Any]]:
        """Everything waiting, oldest first (on the event loop)."""
        with self._lock:
            taken = list(self._pending.values())
            self._pending = {}
            self._signalled = False
            self.wake.clear()
        return taken


class LiveHub:
    """The process's one subscription to the broker, shared by every open stream."""

    def __init__(self, settings: TwinSettings) -> None:
        self.settings = settings
        self.streams: tuple[Stream, ...] = ()  # replaced, never changed: the MQTT thread reads it
        self.client: mqtt.Client | None = None
        self.reason = "not started"
        self.received = 0
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._tried = 0.0

    @property
    def live(self) -> bool:
        return self.client is not None and self._subscribed.is_set()

    def start(self, timeout: float = 5.0) -> None:
        """Subscribe to the broker unless subscribed (or tried a moment ago), and wait for the
        subscription; blocking."""
        self._connect()
        if self.client is not None and not self._subscribed.wait(timeout):
            self.reason = "the MQTT broker did not take the viewer's subscription in time"
            LOG.warning("viewer's live feed: %s", self.reason)

    def _connect(self) -> None:
        with self._lock:
            if self.client is not None or time.monotonic() - self._tried < RETRY_BROKER_S:
                return
            self._tried = time.monotonic()
            try:
                host, port, credentials, _ = broker_address(self.settings)
            except CimError as exc:
                self.reason = str(exc)
                return
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=f"cim-viewer-{os.getpid()}-{id(self):x}",
                protocol=mqtt.MQTTv5,
            )
            if credentials:
                client.username_pw_set(*credentials)
            client.on_connect = self._on_connect
            client.on_subscribe = lambda *args: self._subscribed.set()
            client.on_disconnect = self._on_disconnect
            client.on_message = self._on_message
            try:
                client.connect(host, port, keepalive=30)
            except OSError as exc:
                self.reason = f"the MQTT broker at {host}:{port} is not reachable: {exc}"
                return
            client.loop_start()  # and paho reconnects by itself from now on
            self.client = client

    def stop(self) -> None:
        """Unsubscribe and end every open stream."""
        with self._lock:
            client, self.client = self.client, None
            self._subscribed.clear()
        for stream in self.streams:
            stream.close()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def add(self, stream: Stream) -> None:
        with self._lock:
            self.streams = (*self.streams, stream)

    def remove(self, stream: Stream) -> None:
        with self._lock:
            self.streams = tuple(s for s in self.streams if s is not stream)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self.reason = f"the MQTT broker refused the viewer's feed: {reason}"
            LOG.warning("viewer's live feed: %s", self.reason)
            return
        client.subscribe(TOPIC, qos=0)

    def _on_disconnect(self, client: mqtt.Client, *args: Any) -> None:
        self._subscribed.clear()
        self.reason = "the connection to the MQTT broker was lost; reconnecting"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        event = observation_event(message.topic, bytes(message.payload))
        if event is None:
            return
        self.received += 1
        for stream in self.streams:
            stream.offer(event)


def _sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


async def event_stream(hub: LiveHub, stream: Stream) -> AsyncIterator[bytes]:
    """A browser's Server-Sent Events: a status first, then batches of new values (each
    `[{"datastream", "time", "result"}, ...]`), and a comment when quiet."""
    status = {"live": hub.live, "reason": None if hub.live else hub.reason}
    yield b"retry: 2000\n" + _sse("status", status)
    ends = stream.loop.time() + LIFETIME_S
    try:
        while not stream.closed and stream.loop.time() < ends:
            try:
                await asyncio.wait_for(stream.wake.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            events = stream.take()
            if events:
                yield _sse(None, events)
                await asyncio.sleep(COALESCE_S)  # what comes meanwhile waits, newest only
    finally:
        hub.remove(stream)


def twin_web_router(reads: Engine, settings: TwinSettings | None) -> APIRouter:
    """The viewer's live routes over `reads`; the live feed subscribes to the broker that
    `settings` name (CIM's own by default) when the first browser opens it."""
    router = APIRouter(prefix="/twin", tags=["Live twin (viewer)"])
    hub = LiveHub(settings or TwinSettings())
    router.on_shutdown.append(hub.stop)

    @router.get(
        "/events",
        summary="Server-Sent Events: each new Observation's value",
        response_class=StreamingResponse,
        responses={200: {"description": "An event stream", "content": {"text/event-stream": {}}}},
    )
    async def events(request: Request) -> StreamingResponse:
        check_reader(request)
        await asyncio.to_thread(hub.start)
        stream = Stream(asyncio.get_running_loop())
        hub.add(stream)
        return StreamingResponse(
            event_stream(hub, stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/{city}/sensors", summary="A city's sensors: place and latest values")
    def sensors(request: Request, city: str) -> Response:
        check_reader(request)
        return Response(city_sensors(reads, city), media_type="application/json")

    @router.get(
        "/{city}/latest",
        summary="A city's latest values: each Datastream's newest Observation, compactly",
    )
    def latest(request: Request, city: str) -> Response:
        check_reader(request)
        return Response(city_latest(reads, city), media_type="application/json")

    @router.get("/{city}/colour", summary="Latest value per city object, to colour by")
    def colour(
        request: Request,
        city: str,
        datastream: str = Query(description="a Datastream's name or its ObservedProperty's"),
    ) -> Response:
        check_reader(request)
        body = city_colour(reads, city, datastream)
        return Response(orjson.dumps(body), media_type="application/json")

    return router
