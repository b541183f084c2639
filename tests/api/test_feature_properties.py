"""A feature's attributes as top-level properties, each with the type its values have in the city:
published in the queryables and the schemas (Part 5, and the GeoJSON feature schema GDAL reads),
and used by filters, which compare numbers as numbers and strings as strings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from api.app import create_app
from cim.attributes import published_name as property_name
from cim.settings import ApiSettings
from ingest.pipeline import ingest_files
from tests.cityjson_doc import cgcs2000_city
from tests.conftest import shared

DELFT = shared("cityjson/delft_mixed_objects_v2.0/delft.city.json")
E0, N0 = 500_000.0, 4_057_000.0  # EPSG:4548 around Jinan
PROBLEM = "application/problem+json"
# attributes of a hand-made city: each kind of value, names CIM needs, a string that looks like
# a number, an attribute that is a number in one object and text in another
ATTRIBUTES: dict[str, dict[str, Any]] = {
    "b1": {
        "height": 23.0,
        "storeys": 7,
        "code": "007",
        "level": 3,
        "public": True,
        "parcel": 3_000_000_000,
        "owner": {"name": "城投", "share": 0.5},
        "type": "residential",
        "id": "X-1",
        "limit": 5,
        "height_max": 99,
        "attribute_note": "kept apart",
    },
    "b2": {"height": 23, "storeys": 8, "code": "12", "level": "3a", "public": False},
    "b3": {"height": 24.5, "storeys": 9, "code": "23", "parcel": 7},
}


def _box(vertices: list[list[int]], x: int) -> dict[str, Any]:
    """A 10 m cube x metres east of the origin, as a CityJSON Solid."""
    base = len(vertices)
    for dz in (0, 10_000):
        for dx, dy in ((0, 0), (10_000, 0), (10_000, 10_000), (0, 10_000)):
            vertices.append([x * 1000 + dx, dy, dz])
    b, t = [base + i for i in range(4)], [base + 4 + i for i in range(4)]
    faces = [[b[::-1]], [t]] + [[[b[i], b[(i + 1) % 4], t[(i + 1) % 4], t[i]]] for i in range(4)]
    return {"type": "Solid", "lod": "1", "boundaries": [faces]}


def made_city(folder: Path) -> Path:
    """Three buildings with the attributes above, and a lamp (a point) that has a height too."""
    vertices: list[list[int]] = []
    objects: dict[str, Any] = {
        oid: {"type": "Building", "attributes": attrs, "geometry": [_box(vertices, 20 * n)]}
        for n, (oid, attrs) in enumerate(ATTRIBUTES.items())
    }
    vertices.append([5_000, 30_000, 4_000])
    objects["lamp"] = {
        "type": "CityFurniture",
        "attributes": {"height": 4.0, "code": 7},
        "geometry": [{"type": "MultiPoint", "lod": "1", "boundaries": [len(vertices) - 1]}],
    }
    doc = cgcs2000_city(objects, vertices, E0, N0)
    path = folder / "made.city.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def engine(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    ingest_files(engine, [made_city(tmp_path_factory.mktemp("made"))], "made")
    return engine


@pytest.fixture(scope="module")
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(engine=engine, settings=ApiSettings(max_limit=200)))


def _ids(client: TestClient, query: str) -> set[str]:
    response = client.get(f"/collections/made/items?limit=100&{query}")
    assert response.status_code == 200, response.text
    return {f["id"] for f in response.json()["features"]}


def test_attributes_are_top_level_and_names_cim_needs_are_prefixed(client: TestClient) -> None:
    feature = client.get("/collections/made/items/b1").json()
    props = feature["properties"]
    assert "attributes" not in props and "height" in props
    # CIM's own keep their names; the attribute of the same name gets the prefix
    assert props["type"] == "Building" and props["attribute_type"] == "residential"
    assert props["attribute_id"] == "X-1" and feature["id"] == "b1"
    assert props["attribute_limit"] == 5
    assert props["height_max"] == pytest.approx(10.0, abs=0.01)  # the object's top
    assert props["attribute_height_max"] == 99
    assert props["attribute_attribute_note"] == "kept apart"  # never mistaken for a prefixed one
    # values as they are: numbers, text, booleans, nested objects (JSON stays JSON)
    assert props["height"] == 23.0 and props["storeys"] == 7 and props["code"] == "007"
    assert props["public"] is True and props["owner"] == {"name": "城投", "share": 0.5}
    published = {property_name(k) for k in ATTRIBUTES["b1"]}
    assert published <= set(props)
    # the same names in a page of items
    [page_b1] = [
        f for f in client.get("/collections/made/items").json()["features"] if f["id"] == "b1"
    ]
    assert page_b1["properties"] == {k: v for k, v in props.items() if k != "geometries"}


def test_numbers_are_compared_as_numbers(client: TestClient) -> None:
    """The issue's case: ?height=23 finds the objects whose height is 23.0 (and 23)."""
    assert _ids(client, "height=23") == {"b1", "b2"}
    assert _ids(client, "height=23.0") == {"b1", "b2"}
    assert _ids(client, "height=2.3e1") == {"b1", "b2"}
    assert _ids(client, "height=24.5") == {"b3"}
    assert _ids(client, "storeys=8.0") == {"b2"}
    assert _ids(client, "height=4") == {"lamp"}
    assert _ids(client, "height=23&storeys=7") == {"b1"}
    delft = client.get("/collections/delft/items?measuredHeight=3&limit=200").json()
    assert delft["numberMatched"] >= 1
    assert all(f["properties"]["measuredHeight"] == 3 for f in delft["features"])


def test_strings_are_compared_as_strings(client: TestClient) -> None:
    # code is text in the buildings and a number in the lamp: each is matched as it is
    assert _ids(client, "code=007") == {"b1"}
    assert _ids(client, "code=7") == {"lamp"}
    assert _ids(client, "code=23") == {"b3"}
    # a number and a text of one attribute: either may match
    assert _ids(client, "level=3") == {"b1"}
    assert _ids(client, "level=3a") == {"b2"}
    # text that looks like a number is still text (Delft's building ids)
    pnd = "503100000027998"
    found = client.get(f"/collections/delft/items?identificatiebagpnd={pnd}").json()
    assert [f["properties"]["identificatiebagpnd"] for f in found["features"]] == [pnd]


def test_booleans_nested_values_and_prefixed_names_filter_too(client: TestClient) -> None:
    assert _ids(client, "public=true") == {"b1"}
    assert _ids(client, "public=FALSE") == {"b2"}
    assert _ids(client, "parcel=3000000000") == {"b1"}
    assert _ids(client, "attribute_type=residential") == {"b1"}
    assert _ids(client, "attribute_limit=5") == {"b1"}
    assert _ids(client, "type=Building&attribute_id=X-1") == {"b1"}
    owner = json.dumps({"share": 0.5, "name": "城投"}, ensure_ascii=False)  # another key order
    assert _ids(client, f"owner={owner}") == {"b1"}


@pytest.mark.parametrize(
    "query,words",
    [
        ("height=abc", ["height", "'abc'", "number"]),
        ("height=nan", ["height", "number"]),
        ("storeys=", ["storeys", "integer"]),
        ("public=maybe", ["public", "boolean"]),
        ("owner=nobody", ["owner", "object"]),
        ("type_of_roof=flat", ["unknown parameter", "type_of_roof"]),
        ("attribute_code=007", ["unknown parameter"]),  # code needs no prefix
    ],
)
def test_a_value_that_cannot_be_of_the_type_is_400(
    client: TestClient, query: str, words: list[str]
) -> None:
    r = client.get(f"/collections/made/items?{query}")
    assert r.status_code == 400
    assert r.headers["content-type"] == PROBLEM
    assert all(w in r.json()["detail"] for w in words), r.json()["detail"]


def test_queryables_give_each_property_its_type(client: TestClient) -> None:
    r = client.get("/collections/made/queryables")
    assert r.headers["content-type"] == "application/schema+json"
    doc = r.json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"].endswith("/collections/made/queryables")
    props = doc["properties"]
    assert props["type"]["enum"] == ["Building", "CityFurniture"]
    assert props["height"] == {"type": "number"}
    assert props["storeys"] == {"type": "integer"}
    assert props["parcel"] == {"type": "integer", "format": "int64"}
    assert props["code"] == {"type": ["integer", "string"]}
    assert props["public"] == {"type": "boolean"}
    assert props["owner"] == {"type": "object"}
    assert props["attribute_type"] == {"type": "string"}
    assert "attributes" not in props and "height_min" not in props
    delft = client.get("/collections/delft/queryables").json()["properties"]
    assert delft["identificatiebagpnd"] == {"type": "string"}
    assert delft["measuredHeight"] == {"type": "number"}  # 3 and 6.57: numbers


def test_the_schema_describes_every_property_and_the_geometry(client: TestClient) -> None:
    """OGC API Features Part 5, as QGIS reads it: types, order, id and geometry roles."""
    collection = client.get("/collections/made").json()
    links = {link["rel"]: link for link in collection["links"]}
    schema_link = links["http://www.opengis.net/def/rel/ogc/1.0/schema"]
    assert schema_link["type"] == "application/schema+json"
    assert links["describedBy"]["href"].endswith("/collections/made/schema/feature")
    assert any(
        c.endswith("ogcapi-features-5/1.0/conf/schemas")
        for c in client.get("/conformance").json()["conformsTo"]
    )
    doc = client.get(schema_link["href"].replace("http://testserver", "")).json()
    props = doc["properties"]
    assert props["id"]["x-ogc-role"] == "id"
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"
    assert props["geometry"]["format"] == "geometry-any"  # solids and a point
    assert [p["x-ogc-propertySeq"] for p in props.values()] == list(range(1, len(props) + 1))
    assert list(props)[2:9] == [
        "type",
        "dataset",
        "lods",
        "parents",
        "children",
        "height_min",
        "height_max",
    ]
    assert props["height_min"]["type"] == "number" and props["storeys"]["type"] == "integer"
    # the buildings alone: their geometry is one type, and the lamp's attributes are not theirs
    buildings = client.get("/collections/made/schema?type=Building").json()["properties"]
    assert buildings["geometry"]["format"] == "geometry-multipolygon"
    assert buildings["code"]["type"] == "string" and buildings["type"]["enum"] == ["Building"]
    lamps = client.get("/collections/made/schema?type=CityFurniture").json()["properties"]
    assert lamps["geometry"]["format"] == "geometry-multipoint"
    assert "storeys" not in lamps and lamps["code"]["type"] == "integer"
    delft = client.get("/collections/delft/schema").json()["properties"]
    assert delft["geometry"]["format"] == "geometry-multipolygon"


def test_the_feature_schema_is_one_gdal_makes_typed_columns_of(client: TestClient) -> None:
    doc = client.get("/collections/made/schema/feature").json()
    assert doc["properties"]["type"] == {"type": "string", "enum": ["Feature"]}
    geometry = doc["properties"]["geometry"]["oneOf"][1]["properties"]["type"]
    assert geometry["enum"] == ["MultiPoint", "MultiPolygon"]
    props = doc["properties"]["properties"]["properties"]
    assert props["storeys"] == {"type": "integer"} and props["height"] == {"type": "number"}
    assert props["parcel"] == {"type": "number"}  # GDAL would cut it to a 32-bit column
    assert props["code"] == {"type": ["integer", "string"]}  # GDAL: a text column
    assert props["lods"] == {"type": "array", "title": "Levels of detail"}


def test_a_citys_types_are_read_once_per_generation_of_its_data(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    """A filter costs a look-up of the city's datasets, not a scan of its objects; a new
    dataset changes the types (a number attribute that now holds text too)."""
    engine = new_database()
    ingest_files(engine, [made_city(tmp_path)], "made")
    scans: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "SELECT o.type, a.key" in statement:  # the scan of api.properties
            scans.append(statement)

    client = TestClient(create_app(engine=engine))
    for _ in range(3):
        assert _ids(client, "storeys=7") == {"b1"}
        assert client.get("/collections/made/queryables").status_code == 200
    assert len(scans) == 1
    # another dataset of the city: storeys is now text in some objects
    other = json.loads((tmp_path / "made.city.json").read_text())
    other["CityObjects"] = {
        "b9": {**other["CityObjects"]["b1"], "attributes": {"storeys": "七"}},
    }
    more = tmp_path / "more.city.json"
    more.write_text(json.dumps(other, ensure_ascii=False), encoding="utf-8")
    ingest_files(engine, [more], "made")
    assert _ids(client, "storeys=七") == {"b9"}
    assert _ids(client, "storeys=7") == {"b1"}
    assert len(scans) == 2
    queryables = client.get("/collections/made/queryables").json()["properties"]
    assert queryables["storeys"] == {"type": ["integer", "string"]}
