"""The IoT indicators computed from the live twin: sensors (Things with Datastreams) per km² of
the declared area, and the share of them that reported in the 24 hours up to `as_of`, each
kept with the query and parameters that produced it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

from grading.cim_indicators import Area, Parameters, compute
from ingest.pipeline import ingest_files
from tests.api.test_feature_properties import DELFT
from tests.twin.conftest import thing_body
from twin.entities import parse_path
from twin.store import Writer, create, create_observations

MANAGER = Writer("test", "manager")
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
AS_OF = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def sensor(engine: Engine, name: str, lon: float, lat: float) -> int:
    """A Thing at (lon, lat) with one Datastream; returns the Datastream's id."""
    made = create(
        engine,
        parse_path("Things"),
        thing_body(name, lon, lat, ((f"{name} pm", MEASUREMENT),)),
        MANAGER,
    )
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM twin_datastream WHERE thing_id = :t"), {"t": made.id}
            ).scalar_one()
        )


@pytest.fixture(scope="module")
def city(new_database: Any) -> tuple[Engine, Area, float]:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    with engine.connect() as conn:
        x0, y0, x1, y1 = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent("
                "ST_Transform(bbox, 4326)) e FROM city_object WHERE city_code = 'delft') s"
            )
        ).one()
    area = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    fresh = sensor(engine, "reports", cx, cy)
    stale = sensor(engine, "silent", cx + (x1 - x0) / 4, cy)
    sensor(engine, "elsewhere", cx + 1.0, cy + 1.0)  # outside the area
    create_observations(
        engine,
        [
            (
                {"result": 1.0, "phenomenonTime": (AS_OF - timedelta(hours=2)).isoformat()},
                "t",
                fresh,
            ),
            (
                {"result": 2.0, "phenomenonTime": (AS_OF - timedelta(days=3)).isoformat()},
                "t",
                stale,
            ),
            (
                {"result": 3.0, "phenomenonTime": (AS_OF + timedelta(hours=1)).isoformat()},
                "t",
                stale,
            ),
        ],
        MANAGER,
    )
    with engine.connect() as conn:
        area_km2 = conn.execute(
            text(
                "SELECT ST_Area(ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:a), 4326), 32631))"
                " / 1e6"
            ),
            {"a": orjson.dumps(area).decode()},
        ).scalar_one()
    return engine, Area(orjson.dumps(area).decode(), {"file": "delft-extent.geojson"}), area_km2


def test_density_and_reporting_share_from_the_twin(city: tuple[Engine, Area, float]) -> None:
    engine, area, area_km2 = city
    density, share = compute(
        engine,
        "delft",
        Parameters(as_of=AS_OF, metric_crs=32631),
        names=("iot_twin_density", "iot_reporting_share"),
        area=area,
    )
    assert density.inputs["sensors"] == 2  # the third stands outside the area
    assert density.value == pytest.approx(2 / area_km2, rel=1e-3)
    assert density.unit == "/km²"
    # "silent" reported three days before and an hour after as_of: not in the 24 hours
    assert (share.inputs["sensors"], share.inputs["reporting"]) == (2, 1)
    assert share.value == 50.0
    assert "twin_observation" in share.evidence["query"]
    assert share.evidence["parameters"]["as_of"] == "2026-12-02T12:00:00+00:00"
    assert share.evidence["parameters"]["area"]["file"] == "delft-extent.geojson"


def test_a_later_as_of_counts_the_later_report(city: tuple[Engine, Area, float]) -> None:
    engine, area, _ = city
    [share] = compute(
        engine,
        "delft",
        Parameters(as_of=AS_OF + timedelta(hours=3), metric_crs=32631),
        names=("iot_reporting_share",),
        area=area,
    )
    assert share.inputs["reporting"] == 2
    assert share.value == 100.0
