"""Design schemes (方案比选): a scheme ingests as a scenario of its city and never changes the
baseline; features, tiles and analyses take scenario=; the comparison gives, per scenario, the
parcels' indicators, the height-limit breaches and the neighbours' windows that lose their
sunlight."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.settings import ApiSettings, TileSettings
from cli.main import main
from tests.analysis.test_planning import CRS, layer, rectangle
from tests.tiles.conftest import assert_valid_tilesets, property_column, tiles_of, validate_glbs

B1 = (rectangle(10, 10, 20, 50), {"name": "b1", "height": 30.0, "floors": 10})


@pytest.fixture(scope="module")
def city(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Parcel A (100 m x 100 m) with b1 (30 m, 10 floors) and b2 (18 m, 6 floors); a one-storey
    house north of it. Scheme A keeps b1 and puts, in place of b2 (same id), a 60 m slab of
    20 floors along the parcel's north side, 40 m south of the house."""
    engine = new_database()
    folder = tmp_path_factory.mktemp("schemes")
    env = {"CIM_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    baseline = layer(
        folder / "buildings.geojson",
        [
            B1,
            (rectangle(60, 10, 20, 50), {"name": "b2", "height": 18.0, "floors": 6}),
            (rectangle(40, 130, 20, 10), {"name": "house", "height": 3.0, "floors": 1}),
        ],
    )
    plan = layer(
        folder / "plan.geojson",
        [(rectangle(0, 0, 100, 100), {"地块编码": "A-01", "控高": 24, "容积率": 2.0})],
    )
    scheme = folder / "a"
    scheme.mkdir()
    scheme_a = layer(
        scheme / "buildings.geojson",
        [B1, (rectangle(0, 70, 100, 20), {"name": "slab", "height": 60.0, "floors": 20})],
    )
    for args in (
        [str(baseline), "--city", "jinan", "--crs", CRS, "--height-attr", "height"],
        [str(plan), "--city", "jinan", "--as", "parcels"],
        [str(scheme_a), "--city", "jinan", "--scenario", "scheme-a", "--height-attr", "height"],
    ):
        done = CliRunner().invoke(main, ["ingest", *args], env=env)
        assert done.exit_code == 0, done.output
    return engine


def count(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_a_scheme_never_changes_the_baseline(city: Engine) -> None:
    assert count(city, "SELECT count(*) FROM city_object WHERE city_code = 'jinan'") == 3
    assert count(city, "SELECT count(*) FROM city_object WHERE city_code = 'jinan~scheme-a'") == 2
    assert count(city, "SELECT scenario FROM city WHERE base_city = 'jinan'") == "scheme-a"
    client = TestClient(create_app(engine=city, settings=ApiSettings()))
    listed = [c["id"] for c in client.get("/collections").json()["collections"]]
    assert listed == ["jinan", "jinan-parcels"]  # a scheme is not a city of its own
    page = client.get("/collections/jinan/items").json()
    assert {f["properties"]["name"] for f in page["features"]} == {
        "b1",
        "b2",
        "house",
    }


def test_analyses_take_a_scenario(city: Engine) -> None:
    client = TestClient(create_app(engine=city, settings=ApiSettings()))
    far = {}
    for scenario in (None, "scheme-a"):
        inputs = {"city": "jinan", "scenario": scenario}
        answer = client.post("/processes/parcel-indicators/execution", json={"inputs": inputs})
        assert answer.status_code == 200, answer.text
        [a] = answer.json()["parcels"]
        far[scenario] = (a["far"], a["density_percent"], a["buildings"])
    # baseline: (1,000 x 10 + 1,000 x 6) / 10,000; scheme A: (1,000 x 10 + 2,000 x 20) / 10,000
    assert far[None][0] == pytest.approx(1.6, rel=1e-5) and far[None][2] == 2
    assert far["scheme-a"][0] == pytest.approx(5.0, rel=1e-5) and far["scheme-a"][2] == 2
    assert far["scheme-a"][1] == pytest.approx(30.0, rel=1e-5)
    wrong = client.post(
        "/processes/parcel-indicators/execution",
        json={"inputs": {"city": "jinan", "scenario": "scheme-z"}},
    )
    assert wrong.status_code == 404 and "its scenarios: scheme-a" in wrong.json()["detail"]


def test_the_comparison_names_what_each_scheme_changes(city: Engine) -> None:
    client = TestClient(create_app(engine=city, settings=ApiSettings()))
    answer = client.post(
        "/processes/scheme-comparison/execution",
        json={"inputs": {"city": "jinan", "scenarios": ["scheme-a"],
                         "sunlight": {"year": 2027}}},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["scenarios"] == ["baseline", "scheme-a"] and out["parcels"] == ["A-01"]
    with city.connect() as conn:
        house = conn.execute(
            text("SELECT source_id FROM city_object WHERE attributes ->> 'name' = 'house'")
        ).scalar_one()
    assert out["neighbours"] == [house]  # b1 is in the scheme too: not a neighbour
    base, a = (
        out["indicators"]["baseline"]["parcels"][0],
        out["indicators"]["scheme-a"]["parcels"][0],
    )
    assert base["far"] == pytest.approx(1.6, rel=1e-5) and a["far"] == pytest.approx(5.0, rel=1e-5)
    assert base["checks"]["far"] == "within" and a["checks"]["far"] == "exceeds"
    over = {b["height_m"]: b["over_by_m"] for b in out["height_limits"]["scheme-a"]["breaches"]}
    assert over == pytest.approx({30.0: 6.0, 60.0: 36.0})
    assert out["height_limits"]["baseline"]["summary"]["buildings_breaching"] == 1  # b1
    # the house's south windows had their 2 hours, and lose them behind the slab
    assert out["sunlight"]["baseline"]["summary"]["failing"] == 0
    lost = out["sunlight"]["scheme-a"]["windows_newly_failing"]
    south = [w for w in lost if abs(w["facade_azimuth"] - 180) < 1]
    assert len(south) == 6  # 20 m of facade, a point every 3 m
    for w in south:
        assert w["building"] == house and w["minutes_before"] >= 120 > w["minutes_after"]


def test_a_scheme_in_another_crs_or_of_no_city_is_refused(city: Engine, tmp_path: Path) -> None:
    env = {"CIM_DATABASE_URL": city.url.render_as_string(hide_password=False)}
    lonlat = tmp_path / "b.geojson"
    lonlat.write_text(json.dumps({
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"height": 10},
                      "geometry": {"type": "Polygon", "coordinates": [[[117.0, 36.67],
                      [117.001, 36.67], [117.001, 36.671], [117.0, 36.67]]]}}],
    }))  # fmt: skip
    before = count(city, "SELECT count(*) FROM city_object")
    done = CliRunner().invoke(
        main, ["ingest", str(lonlat), "--city", "jinan", "--scenario", "scheme-b"], env=env
    )
    assert done.exit_code == 2
    assert "the scheme is in EPSG:4326 and city jinan in EPSG:4548" in done.output
    done = CliRunner().invoke(
        main, ["ingest", str(lonlat), "--city", "nowhere", "--scenario", "scheme-b"], env=env
    )
    assert done.exit_code == 2 and "ingest its baseline before its schemes" in done.output
    assert count(city, "SELECT count(*) FROM city_object") == before
    assert count(city, "SELECT count(*) FROM city WHERE code LIKE '%scheme-b%'") == 0


def test_compare_from_the_command_line(city: Engine) -> None:
    env = {"CIM_DATABASE_URL": city.url.render_as_string(hide_password=False)}
    done = CliRunner().invoke(
        main, ["analyse", "compare", "--city", "jinan", "--scenario", "scheme-a"], env=env
    )
    assert done.exit_code == 0, done.output
    assert "baseline: A-01 FAR 1.60; 1 buildings above their limit" in done.output
    assert "scheme-a: A-01 FAR 5.00; 2 buildings above their limit;" in done.output
    assert "windows lose their sunlight" in done.output


def names(page: dict[str, Any]) -> list[str]:
    return sorted(f["properties"]["name"] for f in page["features"])


def test_features_take_a_scenario(city: Engine) -> None:
    client = TestClient(create_app(engine=city, settings=ApiSettings()))
    items = "/collections/jinan/items"
    page = client.get(items, params={"scenario": "scheme-a"}).json()
    assert names(page) == ["b1", "house", "slab"] and page["numberMatched"] == 3
    found = {f["properties"]["name"]: f for f in page["features"]}
    assert found["slab"]["properties"]["scenario"] == "scheme-a"  # the scheme's own objects
    assert found["b1"]["properties"]["scenario"] == "scheme-a"  # say so
    assert "scenario" not in found["house"]["properties"]
    slab = found["slab"]["properties"]
    assert slab["height_max"] - slab["height_min"] == pytest.approx(60.0, abs=0.01)
    # the slab stands in for b2 (same id): the baseline's item is b2, the scheme's the slab
    slab_id = found["slab"]["id"]
    assert client.get(f"{items}/{slab_id}").json()["properties"]["name"] == "b2"
    mine = client.get(f"{items}/{slab_id}", params={"scenario": "scheme-a"}).json()
    assert mine["properties"]["name"] == "slab" and mine["properties"]["geometries"]
    assert mine["links"][0]["href"].endswith(f"{slab_id}?scenario=scheme-a")
    # pages go on in the scheme, and filters apply to its view
    first = client.get(items, params={"scenario": "scheme-a", "limit": 2}).json()
    [after] = [link["href"] for link in first["links"] if link["rel"] == "next"]
    assert "scenario=scheme-a" in after
    second = client.get(after).json()
    assert len(first["features"]) == 2 and len(second["features"]) == 1
    assert sorted(names(first) + names(second)) == ["b1", "house", "slab"]
    assert names(client.get(items, params={"scenario": "scheme-a", "name": "b2"}).json()) == []
    assert names(client.get(items, params={"name": "b2"}).json()) == ["b2"]
    # the collection names its schemes; a scheme that is not there is a 404 naming those that are
    doc = client.get("/collections/jinan").json()
    hrefs = [link["href"] for link in doc["links"]] + [c["href"] for c in doc["content"]]
    assert sum("scenario=scheme-a" in h for h in hrefs) == 2
    for url in (items, f"{items}/{slab_id}", "/collections/jinan/3dtiles/tileset.json"):
        wrong = client.get(url, params={"scenario": "scheme-z"})
        assert wrong.status_code == 404, url
        assert "its scenarios: scheme-a" in wrong.json()["detail"]


def test_tiles_take_a_scenario(city: Engine, tmp_path: Path) -> None:
    """The scheme's tileset draws the baseline's objects it keeps and the scheme's; tiles the
    scheme leaves alone are the baseline's; the official validators find nothing wrong."""
    client = TestClient(create_app(engine=city, tile_settings=TileSettings(meshopt=False)))
    base = "/collections/jinan/3dtiles"
    drawn: dict[str | None, list[str]] = {}
    for scenario in (None, "scheme-a"):
        params = {"scenario": scenario} if scenario else {}
        answer = client.get(f"{base}/tileset.json", params=params)
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        uris = [t["content"]["uri"] for t in tiles_of(doc) if "content" in t]
        folder = tmp_path / (scenario or "baseline")
        drawn[scenario] = []
        for uri in uris:
            got = client.get(f"{base}/{uri}")
            assert got.status_code == 200, got.text
            drawn[scenario] += property_column(got.content, "name")
            # CesiumJS asks each content with the tileset's query too: the same bytes
            again = client.get(f"{base}/{uri.partition('?')[0]}", params=params)
            assert again.content == got.content
            file = folder / uri.partition("?")[0]
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(got.content)
        for tile in tiles_of(doc):
            if "content" in tile:
                tile["content"]["uri"] = tile["content"]["uri"].partition("?")[0]
        (folder / "tileset.json").write_text(json.dumps(doc))
        if scenario:  # the slab's tile is the scheme's; the house's is the baseline's
            assert any(u.endswith("?scenario=scheme-a") for u in uris)
            assert any("?" not in u for u in uris)
    assert sorted(drawn[None]) == ["b1", "b2", "house"]
    assert sorted(drawn["scheme-a"]) == ["b1", "house", "slab"]
    assert_valid_tilesets(tmp_path)
    glbs = sorted(tmp_path.rglob("*.glb"))
    reports = validate_glbs(glbs)
    assert len(reports) == len(glbs) >= 3
    assert not {p: r["messages"] for p, r in reports.items() if r["errors"]}
    refused = client.get(f"{base}/tileset.json", params={"scenario": "scheme-a", "implicit": True})
    assert refused.status_code == 400 and "explicit" in refused.json()["detail"]
