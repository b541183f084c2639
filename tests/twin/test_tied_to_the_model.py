"""A Thing names the city object it sits on (`properties.cityObject`): it is placed at the
object when it has no Location of its own, and the object's Features API item links to it and
its Datastreams. A city object that does not exist is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from ingest.pipeline import ingest_files
from tests.api.test_feature_properties import DELFT
from tests.browser.conftest import running_service
from twin.access import create_key

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture(scope="module")
def delft(new_database: Any) -> Iterator[tuple[str, Engine, str, str]]:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    with engine.connect() as conn:
        building = conn.execute(
            text(
                "SELECT source_id FROM city_object WHERE city_code = 'delft' AND type = 'Building' "
                "AND coalesce(footprint, bbox) IS NOT NULL ORDER BY source_id LIMIT 1"
            )
        ).scalar_one()
    _, key = create_key(engine, "manager", "manager")
    with running_service(engine) as base:
        yield base, engine, key, building


def test_a_thing_on_a_building_is_placed_there_and_linked_from_it(delft: Any) -> None:
    base, engine, key, building = delft
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
    made = http.post(
        "/v1.1/Things",
        json={
            "name": "smart meter",
            "description": "the building's electricity meter",
            "properties": {"cityObject": {"city": "delft", "id": building}},
            "Datastreams": [
                {
                    "name": "energy use",
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
                    "ObservedProperty": {"name": "energy", "definition": "d", "description": "d"},
                }
            ],
        },
    )
    assert made.status_code == 201, made.text
    thing = made.json()["@iot.id"]
    [location] = http.get(f"/v1.1/Things({thing})/Locations").json()["value"]
    lon, lat, height = location["location"]["coordinates"]
    with engine.connect() as conn:
        inside = conn.execute(
            text("""
            SELECT ST_Contains(ST_Transform(coalesce(footprint, bbox), 4326),
                               ST_SetSRID(ST_MakePoint(:x, :y), 4326)), z_max
            FROM city_object WHERE city_code = 'delft' AND source_id = :b"""),
            {"x": lon, "y": lat, "b": building},
        ).one()
    assert inside[0], "the Location is inside the building's footprint"
    assert height == pytest.approx(inside[1])
    item = http.get(f"/collections/delft/items/{building}").json()
    related = {link["title"]: link["href"] for link in item["links"] if link["rel"] == "related"}
    assert related["Thing: smart meter"] == f"{base}/v1.1/Things({thing})"
    assert related["Datastream: energy use"].startswith(f"{base}/v1.1/Datastreams(")
    # an observation gets the building's place as its feature of interest
    ds = http.get(f"/v1.1/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    obs = http.post(f"/v1.1/Datastreams({ds})/Observations", json={"result": 12.5})
    assert obs.status_code == 201
    foi = http.get(f"/v1.1/Observations({obs.json()['@iot.id']})/FeatureOfInterest").json()
    assert foi["feature"]["coordinates"] == [lon, lat, height]


def test_a_missing_city_object_is_refused(delft: Any) -> None:
    base, engine, key, _ = delft
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
    answer = http.post(
        "/v1.1/Things",
        json={
            "name": "ghost",
            "description": "d",
            "properties": {"cityObject": {"city": "delft", "id": "no-such-building"}},
        },
    )
    assert answer.status_code == 400
    assert "has no object 'no-such-building'" in answer.json()["message"]
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM twin_thing WHERE name = 'ghost'")).scalar() == 0
        )
