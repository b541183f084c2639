"""What frost-sta-client cannot send, sent over HTTP: the service root and its conformance
classes, the Data Array extension both ways, property paths ($value, $ref), geo filters, and
bad input answered 400 in SensorThings' error shape with nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.browser.conftest import running_service
from tests.twin.conftest import thing_body
from twin import read
from twin.access import create_key

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COUNT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
TRUTH = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation"


@pytest.fixture(scope="module")
def api(new_database: Any) -> Iterator[tuple[httpx.Client, Engine, dict[str, int]]]:
    """A client with a manager key, and a Thing with three Datastreams (a measurement, a
    count, a lamp's on/off) at two places."""
    engine = new_database()
    _, key = create_key(engine, "test manager", "manager")
    with running_service(engine) as base:
        http = httpx.Client(base_url=f"{base}/v1.1", headers={"Authorization": f"Bearer {key}"})

        def stream(name: str, kind: str) -> dict[str, Any]:
            return {
                "name": name,
                "description": name,
                "observationType": kind,
                "unitOfMeasurement": {"name": "n", "symbol": "", "definition": "d"},
                "Sensor": {
                    "name": "s",
                    "description": "s",
                    "encodingType": "text/html",
                    "metadata": "m",
                },
                "ObservedProperty": {"name": name, "definition": "d", "description": "d"},
            }

        made = http.post(
            "/Things",
            json={
                "name": "路口 1",
                "description": "crossing",
                "Locations": [
                    {
                        "name": "here",
                        "description": "d",
                        "encodingType": "application/geo+json",
                        "location": {"type": "Point", "coordinates": [117.02, 36.66]},
                    }
                ],
                "Datastreams": [
                    stream("pm", MEASUREMENT),
                    stream("cars", COUNT),
                    stream("lamp", TRUTH),
                ],
            },
        )
        assert made.status_code == 201, made.text
        thing = int(made.headers["location"].rsplit("(", 1)[1].rstrip(")"))
        far = http.post(
            "/Things",
            json={
                "name": "远处",
                "description": "far away",
                "Locations": [
                    {
                        "name": "there",
                        "description": "d",
                        "encodingType": "application/geo+json",
                        "location": {"type": "Point", "coordinates": [120.0, 30.0]},
                    }
                ],
            },
        )
        assert far.status_code == 201, far.text
        ids = {
            d["name"]: d["@iot.id"]
            for d in http.get(f"/Things({thing})/Datastreams").json()["value"]
        }
        ids["thing"] = thing
        yield http, engine, ids
        http.close()


def count_observations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM twin_observation")).scalar_one())


def test_the_root_lists_sets_and_conformance(api: Any) -> None:
    http, _, _ = api
    root = http.get("").json()
    assert {v["name"] for v in root["value"]} == {
        "Things",
        "Locations",
        "HistoricalLocations",
        "Datastreams",
        "Sensors",
        "ObservedProperties",
        "Observations",
        "FeaturesOfInterest",
    }
    conformance = root["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array" in conformance
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete" in conformance


def test_data_array_in_and_out(api: Any) -> None:
    http, engine, ids = api
    before = count_observations(engine)
    rows = [[f"2026-11-30T{h:02d}:00:00Z", 10.0 + h] for h in range(24)]
    answer = http.post(
        "/CreateObservations",
        json=[
            {
                "Datastream": {"@iot.id": ids["pm"]},
                "components": ["phenomenonTime", "result"],
                "dataArray@iot.count": len(rows),
                "dataArray": rows,
            }
        ],
    )
    assert answer.status_code == 201, answer.text
    links = answer.json()
    assert len(links) == 24 and all("/v1.1/Observations(" in link for link in links)
    assert count_observations(engine) == before + 24
    out = http.get(
        f"/Datastreams({ids['pm']})/Observations",
        params={
            "$resultFormat": "dataArray",
            "$select": "phenomenonTime,result",
            "$orderby": "phenomenonTime asc",
            "$filter": "phenomenonTime lt 2026-11-30T03:00:00Z",
        },
    ).json()
    [group] = out["value"]
    assert group["components"] == ["phenomenonTime", "result"]
    assert group["dataArray"] == [
        ["2026-11-30T00:00:00.000Z", 10],
        ["2026-11-30T01:00:00.000Z", 11],
        ["2026-11-30T02:00:00.000Z", 12],
    ]
    assert group["dataArray@iot.count"] == 3
    assert group["Datastream@iot.navigationLink"].endswith(f"/Datastreams({ids['pm']})")


def test_data_array_answers_error_for_a_bad_row_and_stores_the_rest(api: Any) -> None:
    http, engine, ids = api
    before = count_observations(engine)
    answer = http.post(
        "/CreateObservations",
        json=[
            {
                "Datastream": {"@iot.id": ids["cars"]},
                "components": ["phenomenonTime", "result"],
                "dataArray": [
                    ["2026-11-29T00:00:00Z", 4],
                    ["2026-11-29T01:00:00Z", 4.5],
                    ["yesterday", 3],
                    ["2026-11-29T03:00:00Z", 7],
                ],
            }
        ],
    )
    assert answer.status_code == 201
    links = answer.json()
    assert [link == "error" for link in links] == [False, True, True, False]
    assert (
        "not an integer" in answer.headers["x-row-errors"]
        or "integer" in answer.headers["x-row-errors"]
    )
    assert count_observations(engine) == before + 2


def test_data_array_rows_of_any_components_are_stored_as_sent(api: Any) -> None:
    """Rows of phenomenonTime, result and resultTime are made without a dict each; rows with
    other components go the general way: both keep every value, and refuse the same."""
    http, engine, ids = api
    quick = {
        "Datastream": {"@iot.id": ids["pm"]},
        "components": ["result", "resultTime", "phenomenonTime"],
        "dataArray": [
            [1.25, "2026-11-28T01:00:05+08:00", "2026-11-28T01:00:00+08:00"],
            [2, None, "2026-11-27T17:00:00Z/2026-11-27T17:30:00Z"],
            ["high", None, "2026-11-27T18:00:00Z"],
        ],
    }
    general = {**quick, "components": ["result", "resultTime", "phenomenonTime", "parameters"]}
    general["dataArray"] = [[*row, {"run": i}] for i, row in enumerate(quick["dataArray"])]
    answer = http.post("/CreateObservations", json=[quick, general])
    assert answer.status_code == 201, answer.text
    links = answer.json()
    assert [link == "error" for link in links] == [False, False, True] * 2
    assert answer.headers["x-row-errors"].startswith(
        "CreateObservations[0].dataArray[2]: result 'high' is not a number"
    )
    got = [http.get(link.split("/v1.1")[1]).json() for link in links if link != "error"]
    for stored in (got[:2], got[2:]):
        assert [(o["result"], o["phenomenonTime"], o["resultTime"]) for o in stored] == [
            (1.25, "2026-11-27T17:00:00.000Z", "2026-11-27T17:00:05.000Z"),
            (2, "2026-11-27T17:00:00.000Z/2026-11-27T17:30:00.000Z", None),
        ]
    assert [o.get("parameters") for o in got] == [None, None, {"run": 0}, {"run": 1}]
    # and read back as a Data Array, with the components asked for, or the standard's
    window = "phenomenonTime ge 2026-11-27T16:00:00Z and phenomenonTime lt 2026-11-27T18:00:00Z"
    keys = ("@iot.id", "phenomenonTime", "result", "resultTime", "parameters")
    for select, wanted in (
        ("id,phenomenonTime,result,resultTime,parameters", keys),
        (None, ("@iot.id", "phenomenonTime", "resultTime", "result")),
    ):
        params = {"$resultFormat": "dataArray", "$filter": window, "$orderby": "id"}
        if select:
            params["$select"] = select
        [group] = http.get(f"/Datastreams({ids['pm']})/Observations", params=params).json()["value"]
        assert group["dataArray"] == [[o.get(k) for k in wanted] for o in got]
    # rows of a Datastream that does not exist are each answered "error"
    answer = http.post("/CreateObservations", json=[{**quick, "Datastream": {"@iot.id": 99999}}])
    assert answer.json() == ["error"] * 3
    assert "Datastream 99999 does not exist" in answer.headers["x-row-errors"]


def test_data_array_reads_write_every_value_as_entity_reads_do(api: Any) -> None:
    """A Data Array's rows are written by PostgreSQL: each value (numbers to their last digit,
    whole ones as integers, text and objects, times to the millisecond in UTC, intervals,
    nulls) is what the entity itself answers; rows group by Datastream in the order of the
    page, which `$count` and `@iot.nextLink` frame as they frame entities."""
    http, _, _ = api
    anything = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation"
    made = http.post(
        "/Things",
        json=thing_body(
            "data array", lon=81.0, lat=11.0, streams=(("x", MEASUREMENT), ("y", anything))
        ),
    )
    assert made.status_code == 201, made.text
    thing = made.json()["@iot.id"]
    x, y = (d["@iot.id"] for d in http.get(f"/Things({thing})/Datastreams").json()["value"])
    components = ["phenomenonTime", "result", "resultTime", "resultQuality", "validTime"]
    rows = {
        x: [
            ["2026-11-26T00:00:00.123456Z", 0.1 + 0.2, None, None, None],
            ["2026-11-26T01:00:00+08:00", 1e-7, "2026-11-26T01:00:00.5Z", [1, 2], None],
            [
                "2026-11-26T02:00:00Z",
                123456789.12345679,
                None,
                None,
                "2026-11-26T00:00:00Z/2026-11-27T00:00:00Z",
            ],
            ["2026-11-26T03:00:00Z", 1e15, None, None, None],
            ["2026-11-26T04:00:00Z", -0.0, None, None, None],
            ["2026-11-26T05:00:00Z/2026-11-26T05:00:00Z", 2.5e20, None, None, None],
        ],
        y: [
            ["2026-11-26T00:30:00Z", 'on, "really" ]', None, {"q": "good"}, None],
            ["2026-11-26T01:30:00Z/2026-11-26T02:00:00Z", {"a": [1, None, "b"]}, None, None, None],
            ["2026-11-26T02:30:00Z", True, None, None, None],
            ["2026-11-26T03:30:00Z", 7, None, None, None],
        ],
    }
    answer = http.post(
        "/CreateObservations",
        json=[
            {"Datastream": {"@iot.id": ds}, "components": components, "dataArray": r}
            for ds, r in rows.items()
        ],
    )
    assert answer.status_code == 201 and "error" not in answer.json(), answer.text
    path = f"/Things({thing})/Datastreams({x})/Observations"
    assert len(http.get(path).json()["value"]) == 6
    select = ["id", *components, "parameters"]
    params = {
        "$filter": f"Datastream/Thing/id eq {thing}",
        "$orderby": "phenomenonTime,id",
        "$select": ",".join(select),
        "$count": "true",
        "$top": "7",
    }
    entities = http.get("/Observations", params=params).json()
    out = http.get("/Observations", params={**params, "$resultFormat": "dataArray"}).json()
    assert out["@iot.count"] == entities["@iot.count"] == 10
    following = dict(parse_qsl(urlsplit(out["@iot.nextLink"]).query))
    assert following["$skip"] == "7" and following["$resultFormat"] == "dataArray"
    keys = ["@iot.id" if c == "id" else c for c in select]
    expected: dict[str, list[list[Any]]] = {}
    of_x = {o["@iot.id"] for o in http.get(path, params={"$select": "id"}).json()["value"]}
    base = str(http.base_url).rstrip("/")
    for o in entities["value"]:
        datastream = f"{base}/Datastreams({x if o['@iot.id'] in of_x else y})"
        expected.setdefault(datastream, []).append([o.get(k) for k in keys])
    assert [g["Datastream@iot.navigationLink"] for g in out["value"]] == list(expected)
    for group in out["value"]:
        rows_read = expected[group["Datastream@iot.navigationLink"]]
        assert group["components"] == select
        assert group["dataArray@iot.count"] == len(rows_read)
        assert group["dataArray"] == rows_read
    # the values themselves
    [group] = http.get(
        path, params={"$resultFormat": "dataArray", "$orderby": "id", "$select": "result,id"}
    ).json()["value"]
    assert [r[0] for r in group["dataArray"]] == [
        0.30000000000000004,
        1e-07,
        123456789.12345679,
        1000000000000000,
        0,
        2.5e20,
    ]
    assert all(type(r[0]) is int for r in group["dataArray"][3:5])
    [group] = http.get(
        path,
        params={
            "$resultFormat": "dataArray",
            "$orderby": "id",
            "$select": ",".join(components[::2]),
        },
    ).json()["value"]
    assert group["dataArray"][:3] == [
        ["2026-11-26T00:00:00.123Z", None, None],
        ["2026-11-25T17:00:00.000Z", "2026-11-26T01:00:00.500Z", None],
        ["2026-11-26T02:00:00.000Z", None, "2026-11-26T00:00:00.000Z/2026-11-27T00:00:00.000Z"],
    ]
    assert group["dataArray"][5][0] == "2026-11-26T05:00:00.000Z"  # an interval of no length
    # the next page, as the link says
    rest = http.get(out["@iot.nextLink"].split("/v1.1")[1]).json()
    assert sum(g["dataArray@iot.count"] for g in rest["value"]) == 3
    assert "@iot.nextLink" not in rest
    # nothing found: an empty page, or 404 when the path names what does not exist
    empty = http.get(path, params={"$resultFormat": "dataArray", "$filter": "result gt 1e30"})
    assert empty.json() == {"value": []}
    missing = http.get(
        f"/Things({thing})/Datastreams(999999)/Observations", params={"$resultFormat": "dataArray"}
    )
    assert missing.status_code == 404 and "Datastreams(999999) does not exist" in missing.text


@pytest.mark.parametrize("select", [None, "phenomenonTime,result", "result,parameters"])
def test_latest_values_by_expand_answer_as_the_general_way(api: Any, select: str | None) -> None:
    """`Observations($top=1;$orderby=phenomenonTime desc)` is answered from the latest values
    kept per Datastream; a filter that keeps everything sends it the general way: the same
    answer, next links (more than one Observation, or a tie at the latest time) included."""
    http, engine, ids = api
    made = http.post(
        "/Things",
        json=thing_body(
            "latest", lon=80.0, lat=10.0, streams=(("a", MEASUREMENT), ("b", MEASUREMENT))
        ),
    )
    thing = made.json()["@iot.id"]
    first, second = (
        d["@iot.id"] for d in http.get(f"/Things({thing})/Datastreams").json()["value"]
    )
    rows = [
        ["2026-11-20T00:00:00Z", 1.0, {"n": 1}],
        ["2026-11-20T01:00:00Z", 2.0, {"n": 2}],
        ["2026-11-20T01:00:00Z", 3.0, {"n": 3}],  # a tie at the latest time
    ]
    body = [
        {
            "Datastream": {"@iot.id": first},
            "components": ["phenomenonTime", "result", "parameters"],
            "dataArray": rows,
        },
        {  # one Observation only: no next link
            "Datastream": {"@iot.id": second},
            "components": ["phenomenonTime", "result"],
            "dataArray": [["2026-11-20T00:00:00Z", 4]],
        },
    ]
    assert http.post("/CreateObservations", json=body).status_code == 201
    inner = "$top=1;$orderby=phenomenonTime desc" + (f";$select={select}" if select else "")
    keeps_all = "$filter=phenomenonTime ge 1900-01-01T00:00:00Z;"
    quick = http.get("/Datastreams", params={"$expand": f"Observations({inner})"}).json()
    general = http.get("/Datastreams", params={"$expand": f"Observations({keeps_all}{inner})"})
    general_value = general.json()["value"]
    for entity in general_value:  # the general way's next link repeats its filter
        link = entity.get("Observations@iot.nextLink")
        if link:
            entity["Observations@iot.nextLink"] = link.replace(
                "$filter=phenomenonTime%20ge%201900-01-01T00:00:00Z&", ""
            )
    for a, b in zip(quick["value"], general_value, strict=True):
        assert a == b
    by_id = {e["@iot.id"]: e for e in quick["value"]}
    many, one = by_id[first], by_id[second]
    assert many["Observations"][0]["result"] == 3 and "Observations@iot.nextLink" in many
    assert [o["result"] for o in one["Observations"]] == [4]
    assert "Observations@iot.nextLink" not in one


def test_expansions_that_would_flood_a_response_are_refused(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nested $expand multiplies: what it may add to one response has a bound (100,000
    entities; 5 here), and a request over it is told how to ask instead."""
    http, _, ids = api
    monkeypatch.setattr(read, "MAX_EXPANDED", 5)
    small = http.get(f"/Datastreams({ids['pm']})", params={"$expand": "Observations($top=4)"})
    assert small.status_code == 200 and len(small.json()["Observations"]) == 4
    nested = http.get("/Things", params={"$expand": "Datastreams($expand=Observations($top=10))"})
    assert nested.status_code == 400, nested.text
    assert "more than 5 entities in one response" in nested.json()["message"]
    assert "lower the $top of the expansions" in nested.json()["message"]
    latest = http.get(
        "/Datastreams",
        params={"$expand": "Observations($top=1;$orderby=phenomenonTime desc)", "$top": "6"},
    )
    assert latest.status_code == 400
    one = http.get("/Datastreams", params={"$expand": "Thing", "$top": "6"})
    assert one.status_code == 400


def test_integers_beyond_64_bits_are_kept_exactly(api: Any) -> None:
    """A property or a result is what was sent: no integer turns into a float on the way in
    or out (orjson would make 2**64 a float)."""
    http, _, _ = api
    big, small = 2**64, -(2**63) - 1
    body = {**thing_body("ids", lon=80.5, lat=10.5), "properties": {"meter": big, "low": small}}
    made = http.post(
        "/Things", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert made.status_code == 201, made.text
    got = http.get(f"/Things({made.json()['@iot.id']})")
    assert json.loads(got.text)["properties"] == {"meter": big, "low": small}


def test_a_component_named_twice_refuses_the_data_array(api: Any) -> None:
    http, engine, ids = api
    before = count_observations(engine)
    answer = http.post(
        "/CreateObservations",
        json=[
            {
                "Datastream": {"@iot.id": ids["pm"]},
                "components": ["result", "result"],
                "dataArray": [[1, 2]],
            }
        ],
    )
    assert answer.status_code == 400
    assert "a component is named twice" in answer.json()["message"]
    assert count_observations(engine) == before


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"result": "high"}, "is not a number"),
        ({"result": 1e400}, "JSON"),
        ({"result": 3, "phenomenonTime": "2026-13-01T00:00:00Z"}, "not an ISO 8601 time"),
        ({"result": 3, "phenomenonTime": "2026-12-01T08:00:00"}, "no UTC offset"),
        ({"result": 3, "colour": "red"}, "has no colour"),
        ({"phenomenonTime": "2026-12-01T08:00:00Z"}, "result is missing"),
    ],
)
def test_a_bad_observation_is_refused_with_its_reason_and_nothing_stored(
    api: Any, body: dict[str, Any], says: str
) -> None:
    http, engine, ids = api
    before = count_observations(engine)
    if body.get("result") == 1e400:  # not JSON at all: a number JSON cannot hold
        answer = http.post(
            f"/Datastreams({ids['pm']})/Observations",
            content=b'{"result": 1e400}',
            headers={"content-type": "application/json"},
        )
    else:
        answer = http.post(f"/Datastreams({ids['pm']})/Observations", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["code"] == 400 and error["type"] == "error"
    assert says in error["message"]
    assert count_observations(engine) == before


def test_a_wrong_datastream_and_a_wrong_truth_value(api: Any) -> None:
    http, engine, ids = api
    before = count_observations(engine)
    missing = http.post("/Observations", json={"result": 1, "Datastream": {"@iot.id": 999999}})
    assert missing.status_code == 400
    assert "999999 does not exist" in missing.json()["message"]
    lamp = http.post(f"/Datastreams({ids['lamp']})/Observations", json={"result": "on"})
    assert lamp.status_code == 400
    assert "true or false" in lamp.json()["message"]
    assert (
        http.post(f"/Datastreams({ids['lamp']})/Observations", json={"result": True}).status_code
        == 201
    )
    assert count_observations(engine) == before + 1


def test_a_deep_insert_that_fails_deep_down_leaves_nothing(api: Any) -> None:
    http, engine, _ = api
    with engine.connect() as conn:
        things = conn.execute(text("SELECT count(*) FROM twin_thing")).scalar_one()
        sensors = conn.execute(text("SELECT count(*) FROM twin_sensor")).scalar_one()
    answer = http.post(
        "/Things",
        json={
            "name": "half",
            "description": "d",
            "Locations": [
                {
                    "name": "l",
                    "description": "d",
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": [117.0, 36.6]},
                }
            ],
            "Datastreams": [
                {
                    "name": "x",
                    "description": "x",
                    "observationType": MEASUREMENT,
                    "unitOfMeasurement": {"name": "n", "symbol": "", "definition": "d"},
                    "Sensor": {
                        "name": "s",
                        "description": "s",
                        "encodingType": "text/html",
                        "metadata": "m",
                    },
                    "ObservedProperty": {"name": "p", "definition": "d", "description": "d"},
                    "Observations": [
                        {"result": 1, "phenomenonTime": "2026-12-01T00:00:00Z"},
                        {"result": "oops"},
                    ],
                }
            ],
        },
    )
    assert answer.status_code == 400
    assert "Observations[1]" in answer.json()["message"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM twin_thing")).scalar_one() == things
        assert conn.execute(text("SELECT count(*) FROM twin_sensor")).scalar_one() == sensors


def test_a_location_outside_wgs84_is_refused(api: Any) -> None:
    http, _, _ = api
    answer = http.post(
        "/Locations",
        json={
            "name": "projected",
            "description": "d",
            "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [500000.0, 4060000.0]},
        },
    )
    assert answer.status_code == 400
    assert "longitude first" in answer.json()["message"]


def test_geo_filters_on_locations(api: Any) -> None:
    http, _, _ = api
    box = "POLYGON((116.9 36.5, 117.2 36.5, 117.2 36.8, 116.9 36.8, 116.9 36.5))"
    inside = http.get("/Locations", params={"$filter": f"st_within(location, geography'{box}')"})
    assert inside.status_code == 200, inside.text
    assert [v["name"] for v in inside.json()["value"]] == ["here"]
    things = http.get(
        "/Things", params={"$filter": f"geo.intersects(Locations/location, geography'{box}')"}
    )
    assert [v["name"] for v in things.json()["value"]] == ["路口 1"]


def test_property_paths_value_and_ref(api: Any) -> None:
    http, _, ids = api
    thing = ids["thing"]
    assert http.get(f"/Things({thing})/name").json() == {"name": "路口 1"}
    value = http.get(f"/Things({thing})/name/$value")
    assert value.text == "路口 1" and value.headers["content-type"].startswith("text/plain")
    refs = http.get(f"/Things({thing})/Datastreams/$ref").json()["value"]
    assert len(refs) == 3 and all(set(r) == {"@iot.selfLink"} for r in refs)
    assert http.get("/Things(987654)").status_code == 404
    assert http.get("/Things(987654)/Datastreams").status_code == 404
    assert http.get("/Gadgets").status_code == 404
    bad = http.get("/Things", params={"$filter": "name eq"})
    assert bad.status_code == 400 and "$filter" in bad.json()["message"]


def test_private_reads_need_a_key(new_database: Any) -> None:
    from cim.settings import ApiSettings

    engine = new_database()
    _, reader = create_key(engine, "a reader", "reader")
    with running_service(engine, ApiSettings(twin_private=True)) as base:
        refused = httpx.get(f"{base}/v1.1/Things")
        assert refused.status_code == 401
        assert refused.json()["type"] == "error"
        allowed = httpx.get(f"{base}/v1.1/Things", headers={"Authorization": f"Bearer {reader}"})
        assert allowed.status_code == 200 and allowed.json()["value"] == []
        # a reader key reads, and writes nothing
        wrote = httpx.post(
            f"{base}/v1.1/Things",
            json={"name": "x", "description": "d"},
            headers={"Authorization": f"Bearer {reader}"},
        )
        assert wrote.status_code == 403


def test_an_oversized_batch_is_refused_whole(api: Any) -> None:
    http, engine, ids = api
    before = count_observations(engine)
    rows = [[1.0]] * 100_001
    answer = http.post(
        "/CreateObservations",
        json=[{"Datastream": {"@iot.id": ids["pm"]}, "components": ["result"], "dataArray": rows}],
    )
    assert answer.status_code == 400
    assert "more than 100000 rows in one request" in answer.json()["message"]
    assert count_observations(engine) == before
