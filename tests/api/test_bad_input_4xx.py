"""Bad input is the caller's error, never the server's: a NUL character in a path segment, a
filter, a query parameter, a header or a JSON text field; an offset beyond 64 bits (or the
deepest page); an absurd bbox, or one past its CRS's area where a projection fails; a file named
in 200 multi-byte characters — each is a 400 problem (or served), never a 5xx, and nothing
reaches the database that it would refuse."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from cim.settings import ApiSettings
from grading import access, rounds
from grading.awards import built_in_policy
from grading.catalogue import built_in
from ingest.pipeline import ingest_files
from tests.conftest import shared

DELFT = shared("cityjson/delft_mixed_objects_v2.0/delft.city.json")
# EPSG:25832 (UTM 32N, a transverse Mercator): PROJ fails on points far off its meridian
UTM = shared("citygml2/sig3d_building_lod2/Building_LOD2-EPSG25832.gml")
AREA = Path(__file__).resolve().parents[2] / "demo" / "data" / "370100-demo-built-up.geojson"
ROUND = "bad-2026"
MAX_OFFSET = 1000
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
JSON = "application/json"


@pytest.fixture(scope="module")
def client(new_database: Callable[[], Engine]) -> tuple[TestClient, dict[str, str]]:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    ingest_files(engine, [UTM], "utm")
    rounds.create_round(
        engine,
        access.cli_actor(),
        ROUND,
        "Bad input",
        2026,
        built_in("db37-3890.1-2020"),
        built_in_policy("shandong-example"),
        [rounds.CityEntry("370100", "济南市", "Jinan")],
    )
    _, key = access.create_key(engine, access.cli_actor(), "bad input", "admin")
    app = create_app(engine=engine, settings=ApiSettings(max_offset=MAX_OFFSET))
    # server exceptions not raised: a 500 is seen as the caller would see it
    return TestClient(app, raise_server_exceptions=False), {"X-API-Key": key}


def _refused(response: Any, *words: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    for word in words:
        assert word in response.json()["detail"], response.json()["detail"]


# ---------------------------------------------------------------- NUL characters
@pytest.mark.parametrize(
    "url",
    [
        "/collections/del%00ft",
        "/collections/delft/items/b%00",
        "/collections/delft/items?type=Building%00",
        "/collections/delft/items?dataset=%00",
        "/collections/delft/items?crs=http%3A//x%00",
        "/collections/delft/items?%00=1",
        f"/grading/rounds/{ROUND}%00/ranking",
        f"/grading/rounds/{ROUND}/cities/370100%00",
    ],
)
def test_a_nul_in_the_path_or_query_is_400(client: Any, url: str) -> None:
    http, _ = client
    _refused(http.get(url), "NUL")


def test_a_nul_in_a_filter_is_400(client: Any) -> None:
    http, _ = client
    # a filter on a real attribute of the collection, with a NUL in its value
    attribute = next(
        k for k in http.get("/collections/delft/queryables").json()["properties"] if k != "type"
    )
    _refused(http.get(f"/collections/delft/items?{attribute}=a%00b"), "NUL")


def test_a_nul_in_model_city_is_400(client: Any) -> None:
    http, key = client
    url = f"/grading/rounds/{ROUND}/cities/370100/cim-indicators?model_city=del%00ft"
    _refused(http.post(url, headers=key), "NUL")


def test_a_nul_in_a_write_path_is_400_before_its_round_is_looked_up(client: Any) -> None:
    http, key = client
    body = {"status": "submitted", "reason": "why"}
    _refused(http.post(f"/grading/rounds/{ROUND}%00/status", json=body, headers=key), "NUL")


def test_a_nul_in_a_header_is_400(client: Any) -> None:
    http, _ = client
    # no real server lets one through (h11 refuses it); the app does not rely on that
    _refused(http.get("/grading/rounds", headers={"X-API-Key": "cim_k_0000\x00000_x"}), "NUL")


def _new_round(**change: Any) -> dict[str, Any]:
    spec = {
        "id": "nul-2026",
        "year": 2026,
        "title": "a round",
        "catalogue": "db37-3890.1-2020",
        "policy": "shandong-example",
        "cities": [{"code": "370100", "name_zh": "济南市", "name_en": "Jinan"}],
    }
    return {**spec, **change}


@pytest.mark.parametrize(
    "body",
    [
        _new_round(title="a\u0000b"),
        _new_round(id="nul\u0000"),
        _new_round(cities=[{"code": "370100", "name_zh": "济\u0000", "name_en": "Jinan"}]),
        _new_round(title="\ud800 alone"),  # an unpaired surrogate: no database text holds it
    ],
)
def test_a_nul_in_a_json_text_field_is_400_and_nothing_is_stored(
    client: Any, body: dict[str, Any]
) -> None:
    http, key = client
    # sent as JSON writes it: NUL and a lone surrogate as \u escapes
    raw = json.dumps(body).encode()
    r = http.post("/grading/rounds", content=raw, headers={**key, "content-type": JSON})
    _refused(r, "JSON body")
    assert http.get("/grading/rounds/nul-2026", headers=key).status_code == 404


@pytest.mark.parametrize("kind", ["application/json; charset=utf-8", "application/merge+json"])
def test_a_nul_in_json_of_any_json_type_is_400(client: Any, kind: str) -> None:
    http, key = client
    raw = b'{"status": "submitted", "reason": "a\\u0000b"}'
    r = http.post(
        f"/grading/rounds/{ROUND}/status", content=raw, headers={**key, "content-type": kind}
    )
    _refused(r, "NUL")


def test_an_escaped_backslash_before_u0000_is_text_not_nul(client: Any) -> None:
    http, key = client
    # "a\\u0000" is an a, a backslash and u0000: no NUL, so not refused for one
    r = http.post(
        f"/grading/rounds/{ROUND}/status",
        content=b'{"status": "nonsense", "reason": "a\\\\u0000"}',
        headers={**key, "content-type": "application/json"},
    )
    assert r.status_code == 400 and "NUL" not in r.json()["detail"]
    assert "status" in r.json()["detail"]


# ---------------------------------------------------------------- offsets
@pytest.mark.parametrize(
    "offset", ["9223372036854775808", "9223372036854775807", str(MAX_OFFSET + 1), "1e3"]
)
def test_an_offset_beyond_the_deepest_page_is_400(client: Any, offset: str) -> None:
    http, _ = client
    _refused(http.get(f"/collections/delft/items?offset={offset}"), "offset")


def test_the_deepest_page_is_served_and_links_no_deeper(client: Any) -> None:
    http, _ = client
    deepest = http.get(f"/collections/delft/items?offset={MAX_OFFSET}")
    assert deepest.status_code == 200 and deepest.json()["features"] == []
    # 570 objects: a page at 500 links to the next; one at 995 not to 1005 (beyond the deepest)
    near = http.get("/collections/delft/items?offset=500&limit=10").json()
    assert any(link["rel"] == "next" for link in near["links"])
    page = http.get(f"/collections/delft/items?offset={MAX_OFFSET - 5}&limit=10").json()
    assert not any(link["rel"] == "next" for link in page["links"])


def test_the_deepest_offset_is_in_the_api_description(client: Any) -> None:
    http, _ = client
    operation = http.get("/api").json()["paths"]["/collections/{city}/items"]["get"]
    offset = next(p for p in operation["parameters"] if p["name"] == "offset")
    assert offset["schema"]["maximum"] == MAX_OFFSET


# ---------------------------------------------------------------- bboxes
@pytest.mark.parametrize(
    "query",
    [
        f"bbox=-1e30,-1e30,1e30,1e30&bbox-crs={EPSG}3857",
        f"bbox=-1e30,-1e30,1e30,1e30&bbox-crs={EPSG}28992",
        f"bbox=0,0,1e9,1e9&bbox-crs={EPSG}3857",
        "bbox=nan,0,1,1",
        "bbox=-inf,0,1,1",
        "bbox=0,0,1,1e400",
        "bbox=-200,0,1,1",
        "bbox=0,-91,1,1",
        f"bbox=-91,0,1,1&bbox-crs={EPSG}4326",  # lat, lon: -91 is a latitude
    ],
)
def test_an_absurd_bbox_is_400(client: Any, query: str) -> None:
    http, _ = client
    _refused(http.get(f"/collections/delft/items?{query}"), "bbox")


@pytest.mark.parametrize("extent", ["1e30", "1e8", "5e7"])
def test_a_bbox_far_off_a_transverse_mercator_is_400_or_cut_never_500(
    client: Any, extent: str
) -> None:
    http, _ = client
    box = f"-{extent},-{extent},{extent},{extent}"
    r = http.get(f"/collections/utm/items?bbox={box}&bbox-crs={EPSG}25832")
    if float(extent) > 1e8:
        _refused(r, "bbox")
    else:  # cut to the zone's area: what the city has there is found (what has a geometry)
        assert r.status_code == 200, r.text
        world = http.get("/collections/utm/items?bbox=-180,-90,180,90").json()["numberMatched"]
        assert r.json()["numberMatched"] == world > 0


def test_a_bbox_outside_its_crs_area_is_400(client: Any) -> None:
    http, _ = client
    # Europe's UTM zone 32N (6-12°E) has no easting of -4,000 km
    r = http.get(f"/collections/utm/items?bbox=-5e6,0,-4e6,1e6&bbox-crs={EPSG}25832")
    _refused(r, "area of use of EPSG:25832")


def test_a_bbox_over_the_whole_crs_finds_everything(client: Any) -> None:
    http, _ = client
    everything = http.get("/collections/delft/items").json()["numberMatched"]
    for crs, world in [
        ("3857", "-20037508,-20037508,20037508,20037508"),
        ("28992", "-1e7,-1e7,1e7,1e7"),  # RD New: cut to the Netherlands
        ("4326", "-90,-180,90,180"),
    ]:
        r = http.get(f"/collections/delft/items?bbox={world}&bbox-crs={EPSG}{crs}&limit=1")
        assert r.status_code == 200, (crs, r.text)
        assert r.json()["numberMatched"] == everything, crs


# ---------------------------------------------------------------- long file names
NAME = "数" * 196  # 196 characters and a 4-character suffix: 200, in 592 bytes of UTF-8


@pytest.mark.parametrize(
    ("route", "method", "suffix", "content"),
    [
        ("imports", "post", ".csv", b"city_code,indicator_id,value\n"),
        ("evidence", "post", ".pdf", b"%PDF-1.4 proof"),
        ("cities/370100/area", "put", ".geojson", None),
    ],
)
def test_a_file_name_of_200_multibyte_characters_is_served(
    client: Any, route: str, method: str, suffix: str, content: bytes | None
) -> None:
    http, key = client
    params = {"filename": NAME + suffix}
    if content is None:
        content = AREA.read_bytes()
        params |= {"kind": "built_up", "reason": "a long name", "name": "区" * 200}
    r = http.request(
        method,
        f"/grading/rounds/{ROUND}/{route}",
        params=params,
        content=content,
        headers=key,
    )
    assert r.status_code in (200, 201), (r.status_code, r.text)
    if route == "evidence":  # and it comes back under its name
        back = http.get(f"/grading/rounds/{ROUND}/evidence/{r.json()['sha256']}", headers=key)
        assert back.status_code == 200 and "%E6%95%B0" in back.headers["content-disposition"]


def test_a_file_name_over_200_characters_is_400(client: Any) -> None:
    http, key = client
    r = http.post(
        f"/grading/rounds/{ROUND}/evidence",
        params={"filename": "数" * 201},
        content=b"proof",
        headers=key,
    )
    _refused(r, "filename")
