"""SensorThings at /v1.1 driven by frost-sta-client, the FROST project's Python client, as a
user's application drives it: a Thing deep-inserted with its Location and Datastreams,
Observations posted, read back with filters, ordering, expansions and pages, entities changed
and deleted. Nothing here builds a request by hand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import frost_sta_client as fsc
import geojson
import pytest
import requests
from sqlalchemy import Engine, text

from tests.browser.conftest import running_service
from twin.access import create_key

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
CATEGORY = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"


@pytest.fixture(scope="module")
def sta(new_database: Any) -> Iterator[tuple[str, Engine, str]]:
    """The service, its database and a manager key."""
    engine = new_database()
    _, key = create_key(engine, "test manager", "manager")
    with running_service(engine) as base:
        yield base, engine, key


def client(base: str, key: str | None) -> fsc.SensorThingsService:
    auth = fsc.AuthHandler(username="manager", password=key) if key else None
    return fsc.SensorThingsService(f"{base}/v1.1", auth_handler=auth)


def station(name: str, lon: float, lat: float) -> fsc.Thing:
    """A Thing with its Location and two Datastreams (PM2.5, and a state as text)."""
    return fsc.Thing(
        name=name,
        description=f"air quality station {name}",
        properties={"district": "历下区", "owner": "环保局"},
        locations=[
            fsc.Location(
                name=f"{name} site",
                description="on the roof",
                encoding_type="application/geo+json",
                location=geojson.Point((lon, lat)),
            )
        ],
        datastreams=[
            fsc.Datastream(
                name=f"{name} PM2.5",
                description="fine particles",
                observation_type=MEASUREMENT,
                unit_of_measurement=fsc.UnitOfMeasurement(
                    name="microgram per cubic metre",
                    symbol="µg/m³",
                    definition="http://qudt.org/vocab/unit/MicroGM-PER-M3",
                ),
                sensor=fsc.Sensor(
                    name="PMS5003",
                    description="laser particle counter",
                    encoding_type="application/pdf",
                    metadata="https://x/pms.pdf",
                ),
                observed_property=fsc.ObservedProperty(
                    name="PM2.5",
                    definition="http://vocabs.lter-europe.net/EnvThes/22035",
                    description="particles under 2.5 µm",
                ),
            ),
            fsc.Datastream(
                name=f"{name} state",
                description="what the station says it is doing",
                observation_type=CATEGORY,
                unit_of_measurement=fsc.UnitOfMeasurement(
                    name="none", symbol="", definition="none"
                ),
                sensor=fsc.Sensor(
                    name="controller",
                    description="the station's controller",
                    encoding_type="text/html",
                    metadata="https://x/ctl",
                ),
                observed_property=fsc.ObservedProperty(
                    name="state", definition="https://x/state", description="running state"
                ),
            ),
        ],
    )


def test_a_thing_deep_inserted_with_its_location_and_datastreams(
    sta: tuple[str, Engine, str],
) -> None:
    base, engine, key = sta
    service = client(base, key)
    thing = station("泉城广场", 117.0213, 36.6610)
    service.create(thing)
    assert isinstance(thing.id, int)
    back = service.things().find(thing.id)
    assert back.name == "泉城广场"
    assert back.properties == {"district": "历下区", "owner": "环保局"}
    streams = list(back.get_datastreams().query().list())
    assert sorted(d.name for d in streams) == ["泉城广场 PM2.5", "泉城广场 state"]
    locations = list(back.get_locations().query().list())
    assert len(locations) == 1
    assert list(locations[0].location["coordinates"]) == [117.0213, 36.661]
    # creating it with a Location recorded where it has been
    history = list(back.get_historical_locations().query().list())
    assert len(history) == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM twin_datastream")).scalar() >= 2


def test_observations_posted_and_read_back_with_filters_and_order(
    sta: tuple[str, Engine, str],
) -> None:
    base, _, key = sta
    service = client(base, key)
    thing = station("趵突泉", 117.0110, 36.6620)
    service.create(thing)
    pm = next(
        d
        for d in service.things().find(thing.id).get_datastreams().query().list()
        if "PM" in d.name
    )
    values = [12.5, 35.0, 80.25, 150.0, 8.0]
    for i, v in enumerate(values):
        obs = fsc.Observation(
            result=v,
            phenomenon_time=f"2026-12-02T0{i}:00:00+08:00",
            datastream=fsc.Datastream(id=pm.id),
        )
        service.create(obs)
        assert isinstance(obs.id, int)
    high = (
        service.observations()
        .query()
        .filter(f"Datastream/id eq {pm.id} and result gt 30")
        .orderby("phenomenonTime", "DESC")
        .list()
    )
    got = [o.result for o in high.entities]
    assert got == [150, 80.25, 35]
    # times come back in UTC: 00:00 in Beijing is 16:00 the day before
    first = (
        service.observations()
        .query()
        .filter(f"Datastream/id eq {pm.id}")
        .orderby("phenomenonTime", "ASC")
        .top(1)
        .list()
    )
    # (iterating a list would follow its next link to the end: the page is .entities)
    assert [o.phenomenon_time for o in first.entities] == ["2026-12-01T16:00:00.000Z"]
    # an observation's feature of interest defaults to its Thing's Location
    found = service.observations().find(high.entities[0].id)
    assert found.result == 150
    state = next(
        d
        for d in service.things().find(thing.id).get_datastreams().query().list()
        if "state" in d.name
    )
    service.create(
        fsc.Observation(
            result="running",
            phenomenon_time="2026-12-02T09:00:00Z",
            datastream=fsc.Datastream(id=state.id),
        )
    )
    texts = service.observations().query().filter("result eq 'running'").list()
    assert [o.result for o in texts] == ["running"]


def test_expansions_nested_and_selected(sta: tuple[str, Engine, str]) -> None:
    base, _, key = sta
    service = client(base, key)
    thing = station("大明湖", 117.0230, 36.6750)
    service.create(thing)
    pm = next(
        d
        for d in service.things().find(thing.id).get_datastreams().query().list()
        if "PM" in d.name
    )
    for i in range(4):
        service.create(
            fsc.Observation(
                result=float(i),
                phenomenon_time=f"2026-12-02T1{i}:00:00Z",
                datastream=fsc.Datastream(id=pm.id),
            )
        )
    things = (
        service.things()
        .query()
        .filter("name eq '大明湖'")
        .expand(
            "Locations,Datastreams($orderby=name asc;"
            "$expand=Observations($top=2;$orderby=phenomenonTime desc),ObservedProperty)"
        )
        .list()
    )
    [only] = list(things)
    assert [loc.name for loc in only.locations] == ["大明湖 site"]
    first = only.datastreams.entities[0]
    assert first.name == "大明湖 PM2.5"
    assert [o.result for o in first.observations.entities] == [3, 2]
    # and following the expansion's next link keeps its order
    assert [o.result for o in first.observations] == [3, 2, 1, 0]
    assert first.observed_property.name == "PM2.5"
    # the Observations' own Datastream, expanded from the other side
    obs = (
        service.observations()
        .query()
        .filter(f"Datastream/id eq {pm.id}")
        .expand("Datastream($select=name)")
        .top(1)
        .list()
    )
    assert [o.datastream.name for o in obs.entities] == ["大明湖 PM2.5"]


def test_pages_follow_the_next_link(sta: tuple[str, Engine, str]) -> None:
    base, _, key = sta
    service = client(base, key)
    for i in range(7):
        service.create(
            fsc.Sensor(
                name=f"page sensor {i}", description="d", encoding_type="text/html", metadata="m"
            )
        )
    pages = service.sensors().query().filter("startswith(name, 'page sensor')").top(3).count()
    listed = pages.list()
    assert listed.count == 7
    assert listed.next_link and listed.next_link.startswith(base)
    names = [s.name for s in listed]  # iterating fetches the next pages
    assert names == [f"page sensor {i}" for i in range(7)]


def test_update_patch_and_delete(sta: tuple[str, Engine, str]) -> None:
    base, engine, key = sta
    service = client(base, key)
    thing = station("千佛山", 117.0330, 36.6400)
    service.create(thing)
    found = service.things().find(thing.id)
    found.description = "moved to the hill top"
    found.properties = {"district": "历下区"}
    service.update(found)
    again = service.things().find(thing.id)
    assert again.description == "moved to the hill top"
    assert again.properties == {"district": "历下区"}
    service.patch(again, [{"op": "replace", "path": "/name", "value": "千佛山站"}])
    assert service.things().find(thing.id).name == "千佛山站"
    service.delete(again)
    with pytest.raises(requests.exceptions.HTTPError) as gone:
        service.things().find(thing.id)
    assert gone.value.response.status_code == 404
    with engine.connect() as conn:  # its Datastreams went with it
        left = conn.execute(
            text("SELECT count(*) FROM twin_datastream WHERE thing_id = :t"), {"t": thing.id}
        ).scalar()
    assert left == 0


def test_writes_need_a_key_and_a_device_key_only_writes_its_own(
    sta: tuple[str, Engine, str],
) -> None:
    base, engine, key = sta
    manager = client(base, key)
    mine, other = station("设备甲", 117.1, 36.6), station("设备乙", 117.2, 36.6)
    manager.create(mine)
    manager.create(other)
    with pytest.raises(requests.exceptions.HTTPError) as anonymous:
        client(base, None).create(station("无名", 117.0, 36.0))
    assert anonymous.value.response.status_code == 401
    assert "key" in anonymous.value.response.json()["message"]
    _, device_key = create_key(engine, "station 甲", "device", [mine.id])
    device = client(base, device_key)
    own = next(iter(manager.things().find(mine.id).get_datastreams().query().list()))
    foreign = next(iter(manager.things().find(other.id).get_datastreams().query().list()))
    ok = fsc.Observation(
        result=1.0 if "PM" in own.name else "on", datastream=fsc.Datastream(id=own.id)
    )
    device.create(ok)
    assert isinstance(ok.id, int)
    with pytest.raises(requests.exceptions.HTTPError) as refused:
        device.create(fsc.Observation(result=1.0, datastream=fsc.Datastream(id=foreign.id)))
    assert refused.value.response.status_code == 403
    with pytest.raises(requests.exceptions.HTTPError) as no_things:
        device.create(station("偷建", 117.0, 36.0))
    assert no_things.value.response.status_code == 403
