"""Operations: /health says whether the database answers and its schema is current, /metrics
counts requests by route and what the tile cache answered, every request is one JSON log line
without headers or query strings, and `cim db dump` / `cim db restore` round-trip a city
exactly."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api.app import create_app
from cim.db.engine import make_engine
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.conftest import free_port, shared
from tests.tiles.conftest import tiles_of

HOUSE = shared("citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml")
LIDAR = shared("pointcloud/lyon_lidar_dense_vegetation/ExampleDataDenseVegetation.las")
CIM = str(Path(sys.executable).with_name("cim"))


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def city(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    ingest_files(engine, [HOUSE], "lyon", crs="EPSG:3946")
    ingest_files(engine, [LIDAR], "lyon", options=ReadOptions(cell_size=20.0))
    return engine


def test_health_says_ok_only_when_the_schema_is_current(
    city: Engine, new_database: Callable[[], Engine]
) -> None:
    ok = TestClient(create_app(engine=city)).get("/health")
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert ok.json()["schema"]["current"] == ok.json()["schema"]["head"]
    behind = new_database()
    with behind.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    r = TestClient(create_app(engine=behind)).get("/health")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert "cim db upgrade" in r.json()["detail"]
    gone = make_engine(f"postgresql+psycopg://cim:x@127.0.0.1:{free_port()}/cim")
    r = TestClient(create_app(engine=gone)).get("/health")
    assert r.status_code == 503 and "database unreachable" in r.json()["detail"]


def test_metrics_count_requests_by_route_and_tile_cache_results(city: Engine) -> None:
    client = TestClient(create_app(engine=city))
    before = _samples(client.get("/metrics").text)
    tileset = client.get("/collections/lyon/3dtiles/tileset.json").json()
    uri = next(t["content"]["uri"] for t in tiles_of(tileset) if "content" in t)
    for _ in range(3):
        assert client.get(f"/collections/lyon/3dtiles/{uri}").status_code == 200
    assert client.get("/collections/nowhere").status_code == 404
    after = _samples(client.get("/metrics").text)
    route = "/collections/{city}/3dtiles/tiles/{level}/{x}/{y}.{fmt}"
    key = ("cim_http_requests_total", (("method", "GET"), ("route", route), ("status", "200")))
    assert after[key] == 3
    missing = (("method", "GET"), ("route", "/collections/{city}"), ("status", "404"))
    assert after[("cim_http_requests_total", missing)] == 1
    count = ("cim_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))
    assert after[count] == 3

    def delta(result: str) -> float:
        name = ("cim_tile_cache_requests_total", (("result", result),))
        return after[name] - before.get(name, 0.0)

    assert delta("made") == 1 and delta("memory") == 2  # made once, then kept in memory
    with city.connect() as conn:
        objects = conn.execute(text("SELECT count(*) FROM city_object")).scalar_one()
    assert after[("cim_datasets", (("city", "lyon"),))] == 2
    assert after[("cim_city_objects", (("city", "lyon"),))] == objects


def test_one_json_log_line_per_request_and_no_secret(
    city: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(create_app(engine=city))
    secret = "cim_k_9f8e7d6c5b4a"
    with caplog.at_level(logging.INFO, logger="cim.access"):
        client.get("/grading/rounds", headers={"X-API-Key": secret})
        client.get(f"/collections/lyon/items?limit=1&key={secret}")
        client.get("/grading/rounds", headers={"Authorization": f"Bearer {secret}"})
    lines = [r.getMessage() for r in caplog.records if r.name == "cim.access"]
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    assert [e["route"] for e in entries] == [
        "/grading/rounds",
        "/collections/{city}/items",
        "/grading/rounds",
    ]
    assert all({"ts", "method", "status", "ms", "path"} <= set(e) for e in entries)
    assert not any(secret in r.getMessage() for r in caplog.records)


def _fingerprint(engine: Engine) -> dict[str, object]:
    """Counts, attributes and geometry hashes of everything a city holds."""
    queries = {
        "objects": "SELECT count(*) FROM city_object",
        "attributes": "SELECT md5(string_agg(source_id || type || attributes::text, '|'"
        " ORDER BY source_id)) FROM city_object",
        "geometries": "SELECT md5(string_agg(encode(ST_AsEWKB(geom), 'hex') || structure::text,"
        " '|' ORDER BY object_id, idx)) FROM object_geometry",
        "meshes": "SELECT md5(string_agg(md5(coalesce(mesh_vertices, '') ||"
        " coalesce(mesh_uvs, '') || coalesce(point_data, '')), '|' ORDER BY object_id, idx))"
        " FROM object_geometry",
        "textures": "SELECT string_agg(sha256, ',' ORDER BY idx) FROM texture_image",
        "datasets": "SELECT string_agg(name || checksum, ',' ORDER BY id) FROM dataset",
    }
    with engine.connect() as conn:
        return {k: conn.execute(text(q)).scalar_one() for k, q in queries.items()}


def test_dump_and_restore_round_trip_a_city_exactly(
    city: Engine, new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    original = _fingerprint(city)
    assert original["objects"] and original["textures"]
    dump = tmp_path / "cim.dump"
    url = city.url.render_as_string(hide_password=False)
    env = {**os.environ, "CIM_DATABASE_URL": url}
    done = subprocess.run([CIM, "db", "dump", str(dump)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert dump.read_bytes()[:5] == b"PGDMP" and not list(tmp_path.glob("*.partial"))
    # into another, empty database
    target = new_database()
    env["CIM_DATABASE_URL"] = target.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [CIM, "db", "restore", str(dump), "--yes"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert _fingerprint(target) == original
    # a bad file changes nothing and says why
    bad = tmp_path / "not.dump"
    bad.write_text("hello")
    done = subprocess.run(
        [CIM, "db", "restore", str(bad), "--yes"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "not a dump" in done.stderr
    assert _fingerprint(target) == original


def test_feature_pages_render_numbers_json_allows_beyond_64_bits() -> None:
    from api.features import JSONResponse

    body = JSONResponse({"big": 2**70, "text": "城"}).body
    assert json.loads(body) == {"big": 2**70, "text": "城"}
