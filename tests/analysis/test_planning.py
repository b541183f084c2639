"""Planning review on the model: parcels ingest as what they are (with their limits, Chinese field
names welcome), parcel indicators that can be checked by hand, height limits, and both as OGC
API Processes (synchronous, and as jobs) and as `cim analyse` commands; bad input refused with
nothing stored."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.settings import ApiSettings
from cli.main import main

# CGCS2000 / 3-degree Gauss-Kruger CM 117E (Jinan): metres, scale 1 on the central meridian, so
# that areas on the ellipsoid match these plane areas to a millionth
CRS = "EPSG:4548"
X0, Y0 = 500_000.0, 4_060_000.0


def rectangle(x: float, y: float, w: float, h: float) -> list[list[list[float]]]:
    x, y = X0 + x, Y0 + y
    return [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]


def layer(
    path: Path, features: list[tuple[list[Any], dict[str, Any]]], kind: str = "Polygon"
) -> Path:
    doc = {
        "type": "FeatureCollection",
        "name": path.stem,
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4548"}},
        "features": [
            {"type": "Feature", "properties": props, "geometry": {"type": kind, "coordinates": c}}
            for c, props in features
        ],
    }
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def city(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Parcel A (100 m x 100 m) holds two 20 m x 50 m buildings of 10 and 6 floors (30 and
    18 m); parcel B, east of it, holds half of a 20 m x 20 m building of 4 floors (12 m) that
    crosses its east line; a tower stands on no parcel."""
    engine = new_database()
    folder = tmp_path_factory.mktemp("planning")
    buildings = layer(
        folder / "buildings.geojson",
        [
            (rectangle(10, 10, 20, 50), {"id": "b1", "height": 30.0, "floors": 10}),
            (rectangle(60, 10, 20, 50), {"id": "b2", "height": 18.0, "floors": 6}),
            (rectangle(190, 40, 20, 20), {"id": "b3", "height": 12.0}),  # 4 floors of 3 m
            (rectangle(400, 400, 20, 20), {"id": "tower", "height": 90.0, "floors": 30}),
        ],
    )
    parcels = layer(
        folder / "plan.geojson",
        [
            (
                rectangle(0, 0, 100, 100),
                {
                    "地块编码": "A-01",
                    "用地性质": "R2",
                    "控高": "24米",
                    "容积率": 1.5,
                    "建筑密度": 0.25,
                    "绿地率": 0.3,
                    "备注": "00123",
                },
            ),
            (
                rectangle(100, 0, 100, 100),
                {
                    "地块编码": "B-02",
                    "用地性质": "B1",
                    "控高": 10,
                    "容积率": 2.0,
                    "建筑密度": 0.4,
                    "绿地率": 0.2,
                    "备注": None,
                },
            ),
        ],
    )
    env = {"CIM_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    runner = CliRunner()
    done = runner.invoke(
        main,
        ["ingest", str(buildings), "--city", "jinan", "--crs", CRS, "--height-attr", "height"],
        env=env,
    )
    assert done.exit_code == 0, done.output
    done = runner.invoke(
        main, ["ingest", str(parcels), "--city", "jinan", "--as", "parcels", "--json"], env=env
    )
    assert done.exit_code == 0, done.output
    [report] = json.loads(done.output)
    assert report["parcel_count"] == 2
    assert report["fields"] == {
        "code": "地块编码",
        "land_use": "用地性质",
        "height_limit": "控高",
        "far_limit": "容积率",
        "density_limit": "建筑密度",
        "green_ratio": "绿地率",
    }
    assert any("read as per cent" in w for w in report["warnings"])
    return engine


def test_parcels_are_stored_as_parcels_with_their_limits_and_attributes(city: Engine) -> None:
    with city.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, land_use, height_limit, far_limit, density_limit, green_ratio, "
                "attributes, area, ST_NPoints(geom) FROM planning_parcel ORDER BY code"
            )
        ).all()
        kinds = conn.execute(text("SELECT DISTINCT type FROM city_object")).scalars().all()
        fmt = conn.execute(
            text("SELECT format, object_count FROM dataset WHERE name = 'plan.geojson'")
        ).one()
    assert kinds == ["Building"]  # no parcel became a building
    assert tuple(fmt) == ("Parcels", 2)
    a, b = rows
    assert a[:6] == ("A-01", "R2", 24.0, 1.5, 25.0, 30.0)
    assert b[:6] == ("B-02", "B1", 10.0, 2.0, 40.0, 20.0)
    assert a.attributes["备注"] == "00123"  # text stays text, zeros kept
    assert a.attributes["控高"] == "24米"  # the source value as it was, beside the limit read
    assert a.area == pytest.approx(10_000.0, rel=1e-5)  # on the ellipsoid, as on the plane


def test_indicators_check_by_hand(city: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAR = (1,000 m² x 10 + 1,000 m² x 6) / 10,000 m² = 1.60; density = 2,000 / 10,000 =
    20.0 %. Parcel B: the half of b3 inside, 200 m² x 4 floors (12 m / 3 m) = 800 m²."""
    done = cli(city, monkeypatch, "analyse", "indicators", "--city", "jinan", "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    a, b = out["parcels"]
    assert (a["code"], b["code"]) == ("A-01", "B-02")
    assert a["buildings"] == 2 and a["floors_from_height"] == 0
    assert a["floor_area_m2"] == pytest.approx(16_000.0, rel=1e-5)
    assert f"{a['far']:.2f}" == "1.60" and a["far"] == pytest.approx(1.6, rel=1e-5)
    assert f"{a['density_percent']:.1f}" == "20.0"
    assert a["max_height_m"] == pytest.approx(30.0, abs=1e-6)
    assert a["mean_height_m"] == pytest.approx(24.0, abs=1e-6)
    assert a["checks"] == {"far": "exceeds", "density": "within", "height": "exceeds"}
    assert b["buildings"] == 1 and b["floors_from_height"] == 1
    assert b["ground_cover_m2"] == pytest.approx(200.0, rel=1e-4)
    assert b["floor_area_m2"] == pytest.approx(800.0, rel=1e-4)
    assert b["far"] == pytest.approx(0.08, rel=1e-4)
    assert b["checks"] == {"far": "within", "density": "within", "height": "exceeds"}
    assert "rounded" in out["rule"]["floor_area"]
    assert {d["dataset"] for d in out["model"]} == {"buildings.geojson", "plan.geojson"}
    # one parcel, named by its code
    done = cli(city, monkeypatch, "analyse", "indicators", "--city", "jinan", "--parcel", "B-02")
    assert done.exit_code == 0, done.output
    assert "B-02" in done.output and "A-01" not in done.output and "exceeds height" in done.output


def test_height_limits_of_parcels_and_of_a_polygon(
    city: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = cli(city, monkeypatch, "analyse", "height-limits", "--city", "jinan", "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    found = {(b["building"], b["parcel_code"]): b["over_by_m"] for b in out["breaches"]}
    assert found.keys() == {("buildings.0", "A-01"), ("buildings.2", "B-02")}  # b1, b3
    assert found[("buildings.0", "A-01")] == pytest.approx(6.0, abs=1e-6)  # 30 - 24
    assert found[("buildings.2", "B-02")] == pytest.approx(2.0, abs=1e-6)  # 12 - 10
    assert out["buildings_checked"] == 3  # the tower stands on no parcel
    # a polygon of its own around the tower, from the ground and as an ellipsoidal elevation
    with city.connect() as conn:
        top = conn.execute(text("SELECT max(z_max) FROM city_object")).scalar_one()
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(CRS, "OGC:CRS84", always_xy=True)
    ring = [list(to_lonlat.transform(x, y)) for x, y in rectangle(390, 390, 40, 40)[0]]
    area = tmp_path / "zone.geojson"
    area.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    )
    done = cli(
        city,
        monkeypatch,
        "analyse",
        "height-limits",
        "--city",
        "jinan",
        "--polygon",
        str(area),
        "--height",
        "80",
        "--json",
    )
    [breach] = json.loads(done.output)["breaches"]
    assert breach["over_by_m"] == pytest.approx(10.0, abs=1e-6)
    done = cli(
        city,
        monkeypatch,
        "analyse",
        "height-limits",
        "--city",
        "jinan",
        "--polygon",
        str(area),
        "--height",
        str(top - 1),
        "--reference",
        "ellipsoid",
        "--json",
    )
    [breach] = json.loads(done.output)["breaches"]
    assert breach["over_by_m"] == pytest.approx(1.0, abs=1e-6)
    assert breach["height_m"] == pytest.approx(top)


def test_height_limits_under_a_limit_surface(
    city: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A clearance surface (净空面) rising 0.2 m per metre eastwards from 10 m, as two
    triangles: a building's limit is the surface's lowest over its footprint, at its west side
    (b1 at x = 10-30 m: 12 m; b2 at 60-80 m: 22 m; b3 at 190-210 m: 48 m)."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(CRS, "OGC:CRS84", always_xy=True)

    def corner(x: float, y: float) -> list[float]:
        return [*to_lonlat.transform(X0 + x, Y0 + y), 10.0 + 0.2 * x]

    a, b, c, d = corner(0, 0), corner(250, 0), corner(250, 100), corner(0, 100)
    clearance = tmp_path / "clearance.geojson"
    clearance.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {},
                     "geometry": {"type": "Polygon", "coordinates": [ring]}}
                    for ring in ([a, b, c, a], [a, c, d, a])
                ],
            }
        )
    )  # fmt: skip
    done = cli(city, monkeypatch, "analyse", "height-limits", "--city", "jinan", "--surface",
               str(clearance), "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert out["limits"] == 2 and out["buildings_checked"] == 3  # the tower is not under it
    [breach] = out["breaches"]
    assert breach["building"] == "buildings.0"
    assert breach["limit_m"] == pytest.approx(12.0, abs=0.01)
    assert breach["over_by_m"] == pytest.approx(18.0, abs=0.01)
    assert "lowest over the building's footprint" in out["rule"]
    # a quadrilateral whose corners are not on one plane is refused, and nothing is kept
    client = TestClient(create_app(engine=city, settings=ApiSettings()))
    before = runs(city)
    twisted = {"type": "Polygon", "coordinates": [[a, b, [*c[:2], 90.0], d, a]]}
    inputs = {"city": "jinan", "surface": twisted}
    answer = client.post("/processes/height-limits/execution", json={"inputs": inputs})
    assert answer.status_code == 400
    assert "polygon 1 is not a plane" in answer.json()["detail"]
    assert "give it as triangles" in answer.json()["detail"]
    flat = {"type": "Polygon", "coordinates": [[a[:2], b[:2], c[:2], a[:2]]]}
    answer = client.post(
        "/processes/height-limits/execution", json={"inputs": {"city": "jinan", "surface": flat}}
    )
    assert answer.status_code == 400 and "limit (m)" in answer.json()["detail"]
    assert runs(city) == before


@pytest.fixture(scope="module")
def client(city: Engine) -> TestClient:
    return TestClient(create_app(engine=city, settings=ApiSettings()))


def runs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM analysis_run")).scalar_one())


def test_processes_api_runs_them_at_once_and_as_jobs(client: TestClient, city: Engine) -> None:
    listed = client.get("/processes").json()["processes"]
    assert {p["id"] for p in listed} == {
        "parcel-indicators",
        "height-limits",
        "sunlight",
        "scheme-comparison",
    }
    doc = client.get("/processes/parcel-indicators").json()
    assert {"city", "parcels", "storey_height"} <= doc["inputs"].keys()
    assert "sync-execute" in doc["jobControlOptions"]
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in conf
    body = {"inputs": {"city": "jinan", "parcels": ["A-01"]}}
    now = client.post("/processes/parcel-indicators/execution", json=body)
    assert now.status_code == 200, now.text
    [a] = now.json()["parcels"]
    assert f"{a['far']:.2f}" == "1.60"
    kept = client.get(now.headers["Location"]).json()
    assert kept["status"] == "successful" and kept["inputs"]["storey_height"] == 3.0
    later = client.post(
        "/processes/height-limits/execution",
        json={"inputs": {"city": "jinan"}},
        headers={"Prefer": "respond-async"},
    )
    assert later.status_code == 201, later.text
    assert later.json()["status"] in ("accepted", "running", "successful")
    job = later.headers["Location"]
    for _ in range(100):
        status = client.get(job).json()["status"]
        if status not in ("accepted", "running"):
            break
        time.sleep(0.1)
    assert status == "successful"
    results = client.get(job + "/results").json()
    assert results["summary"]["buildings_breaching"] == 2
    assert any(j["jobID"] == job.rsplit("/", 1)[1] for j in client.get("/jobs").json()["jobs"])


@pytest.mark.parametrize(
    ("process", "inputs", "status", "says"),
    [
        ("parcel-indicators", {}, 400, "'city'"),
        ("parcel-indicators", {"city": "jinan", "storey_height": 30}, 400, "storey_height"),
        ("parcel-indicators", {"city": "jinan", "colour": 1}, 400, "unknown inputs: colour"),
        ("parcel-indicators", {"city": "nowhere"}, 404, "nowhere"),
        ("height-limits", {"city": "jinan", "height": 20}, 400, "'polygon'"),
        (
            "height-limits",
            {"city": "jinan", "polygon": {"type": "Point", "coordinates": [1, 2]}, "height": 20},
            400,
            "Polygon",
        ),
        (
            "height-limits",
            {
                "city": "jinan",
                "polygon": {
                    "type": "Polygon",
                    "coordinates": [[[500000, 4060000], [1, 2], [3, 4]]],
                },
                "height": 20,
            },
            400,
            "longitude and latitude",
        ),
        ("sunlight-on-the-moon", {"city": "jinan"}, 404, "no process"),
    ],
)
def test_bad_requests_are_refused_with_nothing_kept(
    client: TestClient, city: Engine, process: str, inputs: dict[str, Any], status: int, says: str
) -> None:
    before = runs(city)
    answer = client.post(f"/processes/{process}/execution", json={"inputs": inputs})
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]
    assert runs(city) == before


def test_what_does_not_exist_is_a_404_with_nothing_kept(client: TestClient, city: Engine) -> None:
    before = runs(city)
    for process, inputs in [
        ("parcel-indicators", {"city": "jinan", "parcels": ["A-01", "Z-99"]}),
        ("height-limits", {"city": "jinan", "parcels": ["Z-99"]}),
        ("sunlight", {"city": "jinan", "buildings": ["buildings.0", "nowhere.7"]}),
    ]:
        answer = client.post(f"/processes/{process}/execution", json={"inputs": inputs})
        assert answer.status_code == 404, answer.text
        assert "Z-99" in answer.json()["detail"] or "nowhere.7" in answer.json()["detail"]
    assert runs(city) == before


def test_an_analysis_that_fails_is_kept_as_failed(client: TestClient, city: Engine) -> None:
    """The window is checked when the analysis runs (it needs the place): the job says why."""
    answer = client.post(
        "/processes/sunlight/execution",
        json={
            "inputs": {"city": "jinan", "buildings": ["buildings.0"], "window": ["00:00", "04:00"]}
        },
    )
    assert answer.status_code == 400 and "does not rise" in answer.json()["detail"]
    job = client.get(answer.headers["Location"]).json()
    assert job["status"] == "failed" and "does not rise" in job["message"]
    assert client.get(answer.headers["Location"] + "/results").status_code == 400


def test_bad_parcel_layers_are_refused_with_nothing_stored(
    new_database: Callable[[], Engine], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = new_database()
    good = {"控高": 24, "容积率": 2.0}
    cases = [
        (
            [(rectangle(0, 0, 10, 10), good)],
            ["--field", "height_limit=限高"],
            "no field '限高' (fields: 控高, 容积率)",
        ),
        (
            [(rectangle(0, 0, 10, 10), good), (rectangle(20, 0, 10, 10), {**good, "容积率": -1})],
            [],
            "feature plan.1: far limit -1 in field '容积率' cannot be right",
        ),
        (
            [(rectangle(0, 0, 10, 10), {**good, "建筑密度": 150})],
            [],
            "density limit 150 % in field '建筑密度' cannot be right",
        ),
        ([(rectangle(0, 0, 10, 10), {**good, "控高": "高"})], [], "'高' is not one number"),
        (
            [(rectangle(0, 0, 10, 10), good)],
            ["--field", "colour=颜色"],
            "no field 'colour' is known",
        ),
        ([(rectangle(0, 0, 10, 10), good)], ["--crs", "EPSG:2154"], "outside the area of use"),
    ]
    for features, extra, says in cases:
        path = layer(tmp_path / "plan.geojson", features)
        done = cli(
            engine, monkeypatch, "ingest", str(path), "--city", "c", "--as", "parcels", *extra
        )
        assert done.exit_code == 2, (says, done.output)
        assert says in done.output, done.output
    points = layer(tmp_path / "plan.geojson", [([X0, Y0], good)], kind="Point")
    done = cli(engine, monkeypatch, "ingest", str(points), "--city", "c", "--as", "parcels")
    assert done.exit_code == 2 and "is a Point, not a polygon" in done.output
    with engine.connect() as conn:
        for table in ("planning_parcel", "dataset", "city"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0  # noqa: S608


def test_parcels_are_their_own_collection(client: TestClient, city: Engine) -> None:
    listed = {c["id"] for c in client.get("/collections").json()["collections"]}
    assert {"jinan", "jinan-parcels"} <= listed
    doc = client.get("/collections/jinan-parcels").json()
    assert doc["itemType"] == "feature" and doc["extent"]["spatial"]["bbox"][0][0] > 116.9
    page = client.get("/collections/jinan-parcels/items", params={"limit": 1})
    assert page.headers["content-type"] == "application/geo+json"
    body = page.json()
    assert body["numberMatched"] == 2 and body["numberReturned"] == 1
    [a] = body["features"]
    assert a["geometry"]["type"] == "MultiPolygon"
    p = a["properties"]
    assert (p["code"], p["height_limit"], p["density_limit"], p["控高"]) == (
        "A-01",
        24.0,
        25.0,
        "24米",
    )
    assert p["备注"] == "00123"
    nxt = next(link["href"] for link in body["links"] if link["rel"] == "next")
    [b] = client.get(nxt).json()["features"]
    assert b["properties"]["code"] == "B-02"
    one = client.get(f"/collections/jinan-parcels/items/{b['id']}").json()
    assert one["properties"]["land_use"] == "B1"
    # in a bbox, by land use; a city without parcels, a parcel that does not exist
    r2 = client.get("/collections/jinan-parcels/items", params={"land_use": "R2"}).json()
    assert [f["properties"]["code"] for f in r2["features"]] == ["A-01"]
    far = client.get("/collections/jinan-parcels/items", params={"bbox": "0,0,1,1"}).json()
    assert far["numberMatched"] == 0 and far["features"] == []
    assert client.get("/collections/nowhere-parcels/items").status_code == 404
    assert client.get("/collections/jinan-parcels/items/999999").status_code == 404
    assert client.get("/collections/jinan-parcels/items", params={"bbox": "1,2"}).status_code == 400
    # the city's own collection is unchanged: buildings only
    types = client.get("/collections/jinan/types").json()["types"]
    assert types == ["Building"]


def test_gdal_reads_the_parcels(city: Engine, tmp_path: Path) -> None:
    """ogr2ogr (Debian's GDAL) copies the parcel collection as a GIS user would."""
    from tests.api.test_ogr_client import OGR2OGR
    from tests.browser.conftest import running_service

    assert OGR2OGR, "ogr2ogr is missing: `make test` installs Debian's gdal-bin"
    out = tmp_path / "parcels.gpkg"
    with running_service(city) as base:
        done = subprocess.run(
            [OGR2OGR, "-f", "GPKG", str(out), f"OAPIF:{base}/collections/jinan-parcels"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(out) as db:
        [(table, geometry)] = db.execute(
            "SELECT table_name, geometry_type_name FROM gpkg_geometry_columns"
        ).fetchall()
        rows = db.execute(
            f'SELECT code, land_use, height_limit, "控高", "备注" FROM "{table}" ORDER BY code'  # noqa: S608
        ).fetchall()
    assert geometry in ("MULTIPOLYGON", "GEOMETRY")
    assert rows == [("A-01", "R2", 24.0, "24米", "00123"), ("B-02", "B1", 10.0, "10", None)]


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "paper.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_paper_to_file_in_chinese_or_english(
    client: TestClient, city: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paper names the inputs, the model read (with its files' SHA-256), the rule, the
    figures, and draws the plan: every parcel and building of the area, breaches in red."""
    done = client.post("/processes/height-limits/execution", json={"inputs": {"city": "jinan"}})
    job = done.headers["Location"].rsplit("/", 1)[1]
    links = client.get(f"/jobs/{job}").json()["links"]
    assert any(link["href"].endswith(f"/jobs/{job}/report") for link in links)
    answer = client.get(f"/jobs/{job}/report")
    assert answer.headers["content-type"] == "application/pdf"
    zh = pdf_text(answer.content, tmp_path)
    assert "建筑控高分析报告" in zh and "超限建筑数" in zh and "模型平面图" in zh
    assert "A-01" in zh and "6.00" in zh and "2.00" in zh  # 30 - 24 and 12 - 10
    with city.connect() as conn:
        sha = conn.execute(
            text("SELECT checksum FROM dataset WHERE name = 'plan.geojson'")
        ).scalar_one()
    assert sha[:16] in zh.replace("\n", "")
    en = pdf_text(client.get(f"/jobs/{job}/report", params={"lang": "en"}).content, tmp_path)
    assert "Building height limit report" in en and "Over by (m)" in en and "建筑" not in en
    # the plan: the parcels and every building of the area, the two above their limit in red
    page = client.get(f"/jobs/{job}/report", params={"f": "html"}).text
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count('stroke-dasharray="5 3"') == 2  # parcels A and B
    assert svg.count('fill="#ef4444"') == 2  # b1 and b3
    assert svg.count('fill="#d1d5db"') + svg.count('fill="#9ca3af"') == 1  # b2 (the tower is out)
    # a paper for sunlight, from the command line
    indicators = client.post(
        "/processes/parcel-indicators/execution", json={"inputs": {"city": "jinan"}}
    )
    other = indicators.headers["Location"].rsplit("/", 1)[1]
    out = tmp_path / "indicators.pdf"
    result = cli(city, monkeypatch, "analyse", "report", other, "--lang", "en", "-o", str(out))
    assert result.exit_code == 0, result.output
    text_en = pdf_text(out.read_bytes(), tmp_path)
    assert "Parcel indicators report" in text_en and "1.60 (1.50)" in text_en
    # a job that failed has no paper
    failed = client.post(
        "/processes/sunlight/execution",
        json={
            "inputs": {"city": "jinan", "buildings": ["buildings.0"], "window": ["00:00", "03:00"]}
        },
    )
    bad = failed.headers["Location"].rsplit("/", 1)[1]
    assert client.get(f"/jobs/{bad}/report").status_code == 400
    assert client.get("/jobs/nope/report").status_code == 404


def test_a_page_past_the_end_still_counts_the_parcels(client: TestClient) -> None:
    body = client.get("/collections/jinan-parcels/items", params={"offset": 5}).json()
    assert body["features"] == [] and body["numberMatched"] == 2
