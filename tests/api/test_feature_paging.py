"""Items pages made from what is kept per generation of a city's data (api.paging): each page and
its numberMatched are the ones a single snapshot with a plain count and OFFSET gives, for every
offset around the kept ids, with and without filters; a change of the data is seen by the next
page; and a page whose city is known is one SQL statement."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from api import store
from api.app import create_app
from api.paging import CityPaging, paging
from cim.crs import OutputCrs
from cim.settings import ApiSettings
from ingest.datasets import delete_dataset
from ingest.pipeline import ingest_files
from tests.cityjson_doc import cgcs2000_city

E0, N0 = 500_000.0, 4_057_000.0  # EPSG:4548 around Jinan
STRIDE = 7  # a small stride, so that a city of 70 objects has ten kept ids


def grid_file(folder: Path, name: str, prefix: str, count: int, row: int) -> Path:
    """`count` 10 m cubes in a row (`row` x 100 m north), every third one a lamp post's box
    (CityFurniture), each with its place in the row as the attribute `n`."""
    vertices: list[list[int]] = []
    objects: dict[str, Any] = {}
    for n in range(count):
        base = len(vertices)
        for dz in (0, 10_000):
            for dx, dy in ((0, 0), (10_000, 0), (10_000, 10_000), (0, 10_000)):
                vertices.append([n * 20_000 + dx, row * 100_000 + dy, dz])
        b, t = [base + i for i in range(4)], [base + 4 + i for i in range(4)]
        faces = [[b[::-1]], [t]] + [
            [[b[i], b[(i + 1) % 4], t[(i + 1) % 4], t[i]]] for i in range(4)
        ]
        objects[f"{prefix}{n:03d}"] = {
            "type": "CityFurniture" if n % 3 == 2 else "Building",
            "attributes": {"n": n},
            "geometry": [{"type": "Solid", "lod": "1", "boundaries": [faces]}],
        }
    doc = cgcs2000_city(objects, vertices, E0, N0)
    path = folder / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("grid")
    return {
        "west": grid_file(folder, "west.city.json", "W", 40, 0),
        "east": grid_file(folder, "east.city.json", "E", 30, 1),
    }


@pytest.fixture(scope="module")
def city(new_database: Callable[[], Engine], files: dict[str, Path]) -> Engine:
    engine = new_database()
    paging(engine).stride = STRIDE
    ingest_files(engine, [files["west"], files["east"]], "grid")
    return engine


@pytest.fixture(scope="module")
def client(city: Engine) -> TestClient:
    return TestClient(create_app(engine=city, settings=ApiSettings()))


@pytest.fixture
def statements(city: Engine) -> Iterator[list[str]]:
    """The SQL statements run on the city's engine while the test runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    event.listen(city, "before_cursor_execute", record)
    yield seen
    event.remove(city, "before_cursor_execute", record)


def _ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT id FROM city_object WHERE city_code = 'grid' ORDER BY id")
            ).scalars()
        )


def _page(found: tuple[list[dict[str, Any]], int]) -> tuple[bytes, int]:
    features, matched = found
    return orjson.dumps(features), matched


def test_the_kept_order_holds_every_strideth_id(city: Engine) -> None:
    ids = _ids(city)
    assert len(ids) == 70
    with city.connect() as conn:
        generation, order = CityPaging(stride=STRIDE).order(conn, "grid")
    assert order.anchors == tuple(ids[::STRIDE]) and order.total == 70
    assert generation.count(":ready:") == 2  # both datasets
    assert order.start(0) == (ids[0], 0)
    assert order.start(20) == (ids[14], 6)
    assert order.start(69) == (ids[63], 6)
    assert order.start(500) == (ids[63], 437)  # beyond the last: an empty page


# a bbox (lon/lat) around the first 12 cubes of the west row (its east edge at 230 m, within the
# twelfth cube), and one around the whole city
FIRST_CUBES = (116.999, 36.6439, 117.00257, 36.64401)
EVERYTHING = (116.9, 36.6, 117.1, 36.7)
QUERIES: list[dict[str, Any]] = [
    {},
    {"types": ["Building"]},
    {"types": ["CityFurniture"]},
    {"bbox": FIRST_CUBES},
    {"bbox": EVERYTHING},
    {"attributes": {"n": ["5"]}},
    {"dataset": "east.city.json"},
    {"types": ["Nothing"]},
]


@pytest.mark.parametrize("where", QUERIES, ids=lambda w: ",".join(w) or "all")
def test_every_page_is_the_one_a_single_snapshot_gives(city: Engine, where: dict) -> None:
    for offset in (0, 1, 6, 7, 8, 13, 14, 20, 41, 63, 66, 69, 70, 71, 500):
        for limit in (1, 7, 10, 100):
            q = store.ItemQuery(city="grid", limit=limit, offset=offset, **where)
            assert _page(store.search_items(city, q)) == _page(store._one_snapshot(city, q)), (
                offset,
                limit,
            )


def test_pages_in_another_crs_are_the_single_snapshot_ones(city: Engine) -> None:
    crs = OutputCrs.from_uri("http://www.opengis.net/def/crs/EPSG/0/4548")
    for offset in (0, 9, 65):
        q = store.ItemQuery(city="grid", limit=10, offset=offset, crs=crs)
        page, matched = _page(store.search_items(city, q))
        assert (page, matched) == _page(store._one_snapshot(city, q))
        assert b"[[[[4057" in page  # the city's own CRS, northing first as EPSG:4548 says


def test_the_bbox_plan_is_chosen_by_how_many_match() -> None:
    """Gathering the matches first (a small bbox's few objects) or walking the ids (many)."""
    first = store.ItemQuery(city="c", limit=100)
    assert store._gathered(2_000, 100_000, first)
    assert not store._gathered(50_000, 100_000, first)
    deep = store.ItemQuery(city="c", limit=100, offset=40_000)
    assert store._gathered(50_000, 100_000, deep)


def test_both_plans_are_among_the_pages_compared(city: Engine) -> None:
    small = store.ItemQuery(city="grid", limit=10, bbox=FIRST_CUBES)
    large = store.ItemQuery(city="grid", limit=1, bbox=EVERYTHING)
    assert store.search_items(city, small)[1] == 12 and store._gathered(12, 70, small)
    assert store.search_items(city, large)[1] == 70 and not store._gathered(70, 70, large)


def test_a_change_of_the_data_is_seen_by_the_next_page(
    city: Engine, client: TestClient, files: dict[str, Path]
) -> None:
    def page(query: str) -> dict[str, Any]:
        answer = client.get(f"/collections/grid/items?{query}")
        assert answer.status_code == 200
        return dict(answer.json())

    assert page("limit=5&offset=65")["numberMatched"] == 70
    assert page("limit=5&type=CityFurniture")["numberMatched"] == 13 + 10
    delete_dataset(city, "grid", "east.city.json")
    try:
        after = page("limit=5&offset=35")
        assert after["numberMatched"] == 40 and after["numberReturned"] == 5
        assert [f["id"] for f in after["features"]] == [f"W{n:03d}" for n in range(35, 40)]
        assert page("limit=5&offset=40")["numberReturned"] == 0
        assert page("limit=5&type=CityFurniture")["numberMatched"] == 13
    finally:
        ingest_files(city, [files["east"]], "grid")
    again = page("limit=5&offset=65")
    assert again["numberMatched"] == 70
    assert [f["id"] for f in again["features"]] == [f"E{n:03d}" for n in range(25, 30)]
    assert page("limit=5&type=CityFurniture")["numberMatched"] == 23


def test_a_page_of_a_known_city_is_one_statement(
    city: Engine, client: TestClient, statements: list[str]
) -> None:
    box = ",".join(map(str, FIRST_CUBES))
    for first, then in (
        ("offset=3", "offset=45"),
        ("type=Building&offset=1", "type=Building&offset=30"),
        (f"bbox={box}", f"bbox={box}&offset=5"),
    ):
        assert client.get(f"/collections/grid/items?limit=10&{first}").status_code == 200
        statements.clear()
        again = client.get(f"/collections/grid/items?limit=10&{then}")
        assert again.status_code == 200 and again.json()["numberReturned"] > 0
        assert len(statements) == 1, statements


def test_a_city_that_does_not_exist_is_404_whatever_its_parameters(client: TestClient) -> None:
    for query in ("", "?limit=5&offset=7", "?bbox=1,2", "?n=3", "?type=Building"):
        answer = client.get(f"/collections/nowhere/items{query}")
        assert answer.status_code == 404, query
        assert "nowhere" in answer.json()["detail"]
    for path in ("queryables", "schema", "schema/feature"):
        assert client.get(f"/collections/nowhere/{path}").status_code == 404
