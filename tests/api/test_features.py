"""OGC API Features: capabilities, collections, items with paging, bbox, CRS and filters, and
problem+json for bad requests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from pyproj import Transformer
from sqlalchemy import Engine, text

from api.app import create_app
from cim.settings import ApiSettings
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

DELFT = SHARED / "cityjson/delft_mixed_objects_v2.0/delft.city.json"
MULTI_LOD = SHARED / "cityjson/multi_lod_v2.0/multi_lod.city.json"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def city_engine(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft", city_name_zh="代尔夫特", city_name_en="Delft")
    ingest_files(engine, [MULTI_LOD], "denbosch", crs="EPSG:7415")
    return engine


@pytest.fixture(scope="module")
def client(city_engine: Engine) -> TestClient:
    return TestClient(create_app(engine=city_engine, settings=ApiSettings(max_limit=200)))


def test_landing_page_links(client: TestClient) -> None:
    body = client.get("/").json()
    rels = {link["rel"] for link in body["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels


def test_conformance_declares_core_geojson_oas30_crs(client: TestClient) -> None:
    classes = client.get("/conformance").json()["conformsTo"]
    for part in ("conf/core", "conf/geojson", "conf/oas30", "ogcapi-features-2/1.0/conf/crs"):
        assert any(c.endswith(part) or part in c for c in classes), part


def test_api_is_a_valid_openapi_30_document(client: TestClient) -> None:
    response = client.get("/api")
    assert response.status_code == 200
    assert "openapi" in response.headers["content-type"]
    doc = response.json()
    assert doc["openapi"].startswith("3.0")
    validate(doc)  # raises on any schema error
    assert "/collections/{city}/items" in doc["paths"]


def test_collections_one_per_city_with_extent(client: TestClient) -> None:
    body = client.get("/collections").json()
    ids = [c["id"] for c in body["collections"]]
    assert ids == ["delft", "denbosch"]
    delft = client.get("/collections/delft").json()
    assert delft["title"] == "代尔夫特"
    west, south, east, north = delft["extent"]["spatial"]["bbox"][0]
    assert 4.3 < west < east < 4.4 and 51.9 < south < north < 52.1  # Delft
    assert any(link["rel"] == "items" for link in delft["links"])
    assert "http://www.opengis.net/def/crs/EPSG/0/4326" in delft["crs"]


def test_paging_walks_every_object_once(client: TestClient, city_engine: Engine) -> None:
    with city_engine.connect() as conn:
        total = conn.execute(
            text("SELECT count(*) FROM city_object WHERE city_code = 'delft'")
        ).scalar_one()
    first = client.get("/collections/delft/items?limit=7")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/geo+json")
    body = first.json()
    assert body["numberMatched"] == total == 570
    assert body["numberReturned"] == 7 == len(body["features"])
    assert not any(link["rel"] == "prev" for link in body["links"])
    second = client.get("/collections/delft/items?limit=7&offset=7").json()
    assert {f["id"] for f in body["features"]}.isdisjoint(f["id"] for f in second["features"])
    assert any(link["rel"] == "prev" for link in second["links"])
    last = client.get("/collections/delft/items?limit=7&offset=567").json()
    assert last["numberReturned"] == 3
    assert not any(link["rel"] == "next" for link in last["links"])


def test_limit_above_the_maximum_is_clamped(client: TestClient) -> None:
    body = client.get("/collections/delft/items?limit=100000").json()
    assert body["numberReturned"] == 200


def test_the_limit_declares_its_maximum_in_the_api(client: TestClient) -> None:
    """In the parameter's schema, where clients look for it, not only in its description."""
    doc = client.get("/api").json()
    [limit] = [
        p
        for p in doc["paths"]["/collections/{city}/items"]["get"]["parameters"]
        if p["name"] == "limit"
    ]
    assert limit["schema"]["maximum"] == 200
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["default"] == 10


def test_bbox_selects_exactly_the_objects_whose_extent_meets_it(
    client: TestClient, city_engine: Engine
) -> None:
    box = (4.3640, 52.0110, 4.3660, 52.0120)
    with city_engine.connect() as conn:
        want = set(
            conn.execute(
                text(
                    "SELECT source_id FROM city_object WHERE city_code = 'delft' AND "
                    "ST_XMax(bbox) >= :a AND ST_XMin(bbox) <= :c AND ST_YMax(bbox) >= :b "
                    "AND ST_YMin(bbox) <= :d"
                ),
                dict(zip("abcd", box, strict=True)),
            ).scalars()
        )
    assert 0 < len(want) < 570
    body = client.get(
        "/collections/delft/items", params={"bbox": ",".join(map(str, box)), "limit": 1000}
    ).json()
    assert {f["id"] for f in body["features"]} == want
    assert body["numberMatched"] == len(want)


def test_bbox_in_another_crs(client: TestClient) -> None:
    box = (4.3640, 52.0110, 4.3660, 52.0120)
    to_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    x0, y0 = to_3857.transform(box[0], box[1])
    x1, y1 = to_3857.transform(box[2], box[3])
    a = client.get(
        "/collections/delft/items", params={"bbox": ",".join(map(str, box)), "limit": 1000}
    ).json()
    b = client.get(
        "/collections/delft/items",
        params={
            "bbox": f"{x0},{y0},{x1},{y1}",
            "limit": 1000,
            "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        },
    ).json()
    assert {f["id"] for f in a["features"]} == {f["id"] for f in b["features"]}


def test_type_and_attribute_filters(client: TestClient) -> None:
    roads = client.get("/collections/delft/items?type=Road&limit=1000").json()
    assert roads["numberMatched"] == 143
    assert {f["properties"]["type"] for f in roads["features"]} == {"Road"}
    both = client.get("/collections/delft/items?type=Road,Bridge&limit=1").json()
    assert both["numberMatched"] == 146
    queryables = client.get("/collections/delft/queryables").json()["properties"]
    key = next(k for k in queryables if k != "type")
    value = next(
        f["properties"][key]
        for f in client.get("/collections/delft/items?limit=570").json()["features"]
        if key in f["properties"]
    )
    filtered = client.get("/collections/delft/items", params={key: str(value), "limit": 570}).json()
    assert filtered["numberMatched"] >= 1
    assert all(str(f["properties"][key]) == str(value) for f in filtered["features"])


def test_item_has_every_lod_in_crs84_with_heights(client: TestClient) -> None:
    items = client.get("/collections/denbosch/items?limit=1").json()["features"]
    oid = items[0]["id"]
    feature = client.get(f"/collections/denbosch/items/{oid}").json()
    assert feature["id"] == oid
    geometries = feature["properties"]["geometries"]
    assert [g["lod"] for g in geometries] == ["1.2", "1.3", "2.2"]
    lon, lat, h = feature["geometry"]["coordinates"][0][0][0]
    assert 5.2 < lon < 5.4 and 51.6 < lat < 51.8 and -10 < h < 100  # 's-Hertogenbosch
    assert "semantics" in geometries[2] and "semantics" not in geometries[0]


def test_crs_parameter_reprojects_and_says_so(client: TestClient) -> None:
    oid = client.get("/collections/delft/items?limit=1").json()["features"][0]["id"]
    base = client.get(f"/collections/delft/items/{oid}").json()
    lon, lat = base["geometry"]["coordinates"][0][0][0][:2]
    r = client.get(
        f"/collections/delft/items/{oid}",
        params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
    )
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4326>"
    assert r.json()["geometry"]["coordinates"][0][0][0][:2] == pytest.approx([lat, lon])
    r = client.get(
        f"/collections/delft/items/{oid}",
        params={"crs": "http://www.opengis.net/def/crs/EPSG/0/3857"},
    )
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
    assert r.json()["geometry"]["coordinates"][0][0][0][:2] == pytest.approx([x, y], abs=0.01)


@pytest.mark.parametrize(
    "url,status",
    [
        ("/collections/delft/items?bbox=1,2,3", 400),
        ("/collections/delft/items?bbox=a,b,c,d", 400),
        ("/collections/delft/items?bbox=5,5,1,1", 400),
        ("/collections/delft/items?bbox=1,2,3,nan", 400),
        ("/collections/delft/items?limit=0", 400),
        ("/collections/delft/items?limit=ten", 400),
        ("/collections/delft/items?offset=-1", 400),
        ("/collections/delft/items?crs=EPSG:999999", 400),
        ("/collections/delft/items?crs=http://www.opengis.net/def/crs/EPSG/0/2056", 400),
        ("/collections/delft/items?bbox-crs=http://www.opengis.net/def/crs/EPSG/0/3857", 400),
        ("/collections/delft/items?colour=red", 400),
        ("/collections/delft/items/no-such-object", 404),
        ("/collections/atlantis", 404),
        ("/collections/atlantis/items", 404),
    ],
)
def test_bad_requests_get_problem_json(client: TestClient, url: str, status: int) -> None:
    r = client.get(url)
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["detail"] and body["title"]


def test_the_citys_own_crs_is_offered(client: TestClient) -> None:
    """Delft's data is EPSG:7415 (RD New + NAP): its horizontal part EPSG:28992 is offered."""
    crs = client.get("/collections/delft").json()["crs"]
    assert "http://www.opengis.net/def/crs/EPSG/0/28992" in crs
    oid = client.get("/collections/delft/items?limit=1").json()["features"][0]["id"]
    lonlat = client.get(f"/collections/delft/items/{oid}").json()["geometry"]["coordinates"]
    rd = client.get(
        f"/collections/delft/items/{oid}",
        params={"crs": "http://www.opengis.net/def/crs/EPSG/0/28992"},
    ).json()
    x, y = rd["geometry"]["coordinates"][0][0][0][:2]
    ex, ey = Transformer.from_crs(4326, 28992, always_xy=True).transform(*lonlat[0][0][0][:2])
    assert (x, y) == pytest.approx((ex, ey), abs=0.01)
    assert 80_000 < x < 90_000 and 440_000 < y < 450_000  # Delft in RD New
