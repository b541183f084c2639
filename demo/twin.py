"""The demo city's live twin: its 5G stations, cameras, smart street lights, IoT sensors and the
smart meters of some public buildings as SensorThings Things with Datastreams, a day of history
each, and the simulator that keeps them reporting over MQTT (`cim demo sensors`).

Every value is invented, from the seed: plausible daily cycles in Beijing time (traffic and
people peak at 8:00 and 18:00, lamps burn from dusk to dawn, PM2.5 is worst in the morning,
offices use power in working hours), not measurements.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, text

from twin.entities import COUNT, MEASUREMENT, TRUTH
from twin.store import Writer, create_data_array, create_many

WRITER = Writer("demo", "manager")
BEIJING = timezone(timedelta(hours=8))
HISTORY = timedelta(hours=24)
HISTORY_STEP = timedelta(minutes=30)
METER_SHARE = 10  # one public or commercial building in this many has a smart meter


@dataclass(frozen=True)
class Kind:
    """A kind of Datastream: its name, unit, observation type, and how its value goes."""

    key: str
    name: str  # Chinese, as users here read it
    english: str
    unit: tuple[str, str]  # name, symbol
    observation_type: str
    base: float  # typical value
    swing: float  # how far the daily cycle moves it


KINDS = {
    k.key: k
    for k in (
        Kind("users", "5G 在线用户数", "connected users", ("count", ""), COUNT, 180, 150),
        Kind(
            "traffic_mbps",
            "5G 流量",
            "data traffic",
            ("megabit per second", "Mbps"),
            MEASUREMENT,
            400,
            350,
        ),
        Kind("people", "人流量", "people per minute", ("count per minute", "/min"), COUNT, 12, 10),
        Kind("lamp", "路灯开关", "lamp on", ("", ""), TRUTH, 0, 0),
        Kind("power", "路灯功率", "lamp power", ("watt", "W"), MEASUREMENT, 120, 0),
        Kind(
            "pm25",
            "PM2.5 浓度",
            "PM2.5",
            ("microgram per cubic metre", "µg/m³"),
            MEASUREMENT,
            45,
            30,
        ),
        Kind("noise", "噪声", "noise level", ("decibel A-weighted", "dB(A)"), MEASUREMENT, 55, 12),
        Kind("water_level", "水位", "water level", ("metre", "m"), MEASUREMENT, 1.8, 0.2),
        Kind(
            "vehicles", "车流量", "vehicles per minute", ("count per minute", "/min"), COUNT, 30, 25
        ),
        Kind("occupied", "车位占用", "parking space occupied", ("", ""), TRUTH, 0, 0),
        Kind("energy", "用电量", "energy use", ("kilowatt hour", "kWh"), MEASUREMENT, 80, 60),
    )
}
# what each kind of city object reports
BY_FUNCTION = {
    "5g_base_station": ("5G 基站", ["users", "traffic_mbps"]),
    "cctv_camera": ("摄像头", ["people"]),
    "street_light": ("智慧路灯", ["lamp", "power"]),
    "iot_sensor/air_quality": ("空气质量监测点", ["pm25"]),
    "iot_sensor/noise": ("噪声监测点", ["noise"]),
    "iot_sensor/water_level": ("水位监测点", ["water_level"]),
    "iot_sensor/traffic": ("车流检测器", ["vehicles"]),
    "iot_sensor/parking": ("车位检测器", ["occupied"]),
    "building": ("智能电表", ["energy"]),
}


def value(kind: Kind, at: datetime, rng: random.Random) -> Any:
    """A plausible reading of a kind at a time (Beijing time decides the daily cycle)."""
    hour = at.astimezone(BEIJING).hour + at.astimezone(BEIJING).minute / 60
    rush = math.exp(-((hour - 8) ** 2) / 3) + math.exp(-((hour - 18) ** 2) / 4)
    dark = hour < 6.5 or hour >= 17.5
    if kind.key in ("lamp",):
        return dark
    if kind.key == "occupied":
        return rng.random() < (0.8 if 9 <= hour <= 21 else 0.3)
    if kind.key == "power":
        return (
            round(kind.base * (0.55 if hour < 1 or hour > 5 else 0.35) + rng.uniform(-3, 3), 1)
            if dark
            else 0.0
        )
    if kind.key == "pm25":
        level = kind.base + kind.swing * math.exp(-((hour - 8) ** 2) / 6)
    elif kind.key == "energy":
        level = kind.base * 0.3 + kind.swing * (1.0 if 8 <= hour <= 19 else 0.1)
    elif kind.key == "water_level":
        level = kind.base + kind.swing * math.sin(hour / 24 * 2 * math.pi)
    elif kind.key == "noise":
        level = kind.base + kind.swing * (rush + (0.3 if 7 <= hour <= 22 else -0.5))
    else:
        level = kind.base * 0.2 + kind.swing * rush + kind.base * (0.4 if 7 <= hour <= 22 else 0)
    noisy = max(0.0, level * rng.uniform(0.9, 1.1))
    if kind.observation_type == COUNT:
        return int(round(noisy))
    return round(noisy, 2 if kind.key == "water_level" else 1)


def _objects(engine: Engine, city: str) -> list[tuple[str, str, str]]:
    """(object id, what it is, a name) of the city's equipment and metered buildings."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT source_id, attributes ->> 'function' AS f,
                   attributes ->> 'sensorType' AS sensor_type, attributes ->> 'smart' AS smart,
                   type, attributes ->> 'name' AS name
            FROM city_object WHERE city_code = :c
              AND (attributes ->> 'function' IN ('5g_base_station', 'cctv_camera', 'iot_sensor',
                                                 'street_light')
                   OR (type = 'Building' AND attributes ->> 'function' IN
                       ('public', 'office', 'commercial', 'education', 'healthcare')))
            ORDER BY source_id"""),
            {"c": city},
        ).all()
    found = []
    buildings = 0
    for r in rows:
        if r.type == "Building":
            buildings += 1
            if buildings % METER_SHARE == 0:
                found.append((r.source_id, "building", r.name or r.source_id))
        elif r.f == "street_light":
            if r.smart == "true":
                found.append((r.source_id, "street_light", r.source_id))
        elif r.f == "iot_sensor":
            if f"iot_sensor/{r.sensor_type}" in BY_FUNCTION:
                found.append((r.source_id, f"iot_sensor/{r.sensor_type}", r.source_id))
        else:
            found.append((r.source_id, r.f, r.source_id))
    return found


def has_twin(engine: Engine, city: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT 1 FROM twin_thing WHERE city_code = :c AND properties ->> 'demo' = "
                    "'true' LIMIT 1"
                ),
                {"c": city},
            ).first()
        )


def load_twin(engine: Engine, city: str, seed: int = 42, now: datetime | None = None) -> int:
    """Make the demo twin of a city (unless it has one): Things on the equipment and metered
    buildings, a day of history each. Returns the number of Things made (0: it had one)."""
    if has_twin(engine, city):
        return 0
    rng = random.Random(seed)
    objects = _objects(engine, city)
    sensors, properties = _shared(engine)
    bodies = []
    for source_id, what, name in objects:
        label, kinds = BY_FUNCTION[what]
        bodies.append(
            {
                "name": f"{label} {name}",
                "description": f"{label} on city object {source_id} (demo: invented readings)",
                "properties": {
                    "demo": True,
                    "cityObject": {"city": city, "id": source_id},
                    "kind": what,
                },
                "Datastreams": [
                    {
                        "name": f"{KINDS[k].name} {name}",
                        "description": f"{KINDS[k].english} (demo)",
                        "observationType": KINDS[k].observation_type,
                        "unitOfMeasurement": {
                            "name": KINDS[k].unit[0],
                            "symbol": KINDS[k].unit[1],
                            "definition": f"https://cim.example/units/{k}",
                        },
                        "properties": {"kind": k},
                        "Sensor": {"@iot.id": sensors[k]},
                        "ObservedProperty": {"@iot.id": properties[k]},
                    }
                    for k in kinds
                ],
            }
        )
    create_many(engine, "Things", bodies, WRITER)
    history(engine, city, rng, now or datetime.now(UTC))
    return len(bodies)


def _shared(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    """One Sensor and one ObservedProperty per kind, shared by the demo's Datastreams."""
    keys = list(KINDS)
    sensors = create_many(
        engine,
        "Sensors",
        [
            {
                "name": f"demo {KINDS[k].english} sensor",
                "description": "invented for the demo",
                "encodingType": "text/html",
                "metadata": "https://cim.example/demo-sensor",
            }
            for k in keys
        ],
        WRITER,
    )
    props = create_many(
        engine,
        "ObservedProperties",
        [
            {
                "name": KINDS[k].name,
                "definition": f"https://cim.example/observed/{k}",
                "description": KINDS[k].english,
            }
            for k in keys
        ],
        WRITER,
    )
    return dict(zip(keys, sensors, strict=True)), dict(zip(keys, props, strict=True))


def demo_datastreams(engine: Engine, city: str) -> list[tuple[int, str]]:
    """(Datastream id, kind) of the city's demo twin."""
    with engine.connect() as conn:
        return [
            (r.id, r.kind)
            for r in conn.execute(
                text("""
            SELECT d.id, d.properties ->> 'kind' AS kind FROM twin_datastream d
            JOIN twin_thing t ON t.id = d.thing_id
            WHERE t.city_code = :c AND t.properties ->> 'demo' = 'true' ORDER BY d.id"""),
                {"c": city},
            )
        ]


def history(engine: Engine, city: str, rng: random.Random, now: datetime) -> int:
    """A reading every half hour of the last day for each demo Datastream (a Data Array)."""
    streams = demo_datastreams(engine, city)
    times = []
    t = now - HISTORY
    while t < now:
        times.append(t)
        t += HISTORY_STEP
    body = [
        {
            "Datastream": {"@iot.id": ds},
            "components": ["phenomenonTime", "result"],
            "dataArray": [
                [at.astimezone(BEIJING).isoformat(timespec="seconds"), value(KINDS[kind], at, rng)]
                for at in times
            ],
        }
        for ds, kind in streams
    ]
    stored = 0
    for chunk in range(0, len(body), 500):
        rows, errors = create_data_array(engine, body[chunk : chunk + 500], WRITER)
        assert not errors, errors  # invented here: a bad one is a bug
        stored += len(rows)
    return stored


def readings(
    streams: list[tuple[int, str]], rng: random.Random, at: datetime
) -> Iterator[tuple[str, bytes]]:
    """One round of MQTT messages: (topic, payload) for every Datastream."""
    import orjson

    when = at.astimezone(BEIJING).isoformat(timespec="seconds")
    for ds, kind in streams:
        yield (
            f"v1.1/Datastreams({ds})/Observations",
            orjson.dumps({"result": value(KINDS[kind], at, rng), "phenomenonTime": when}),
        )
