"""Every CityJSON and CityJSONSeq file in ../shared/data ingests whole, and the Features API
returns exactly the objects the file holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.attributes import published_name as property_name
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

FILES = sorted([*SHARED.glob("cityjson/*/*.json"), *SHARED.glob("cityjsonseq/*/*.jsonl")])
# files whose metadata declare no CRS; MANIFEST.md says they are RD New + NAP (EPSG:7415)
NO_CRS = {"DH_01_subs.city.json", "multi_lod.city.json"}


def objects_in_file(path: Path) -> dict[str, dict]:
    """The city objects of a file, read with the standard library (independent of the reader)."""
    if path.suffix == ".jsonl":
        objects: dict[str, dict] = {}
        with open(path, encoding="utf-8") as f:
            for line in list(f)[1:]:
                if line.strip():
                    objects.update(json.loads(line)["CityObjects"])
        return objects
    return json.loads(path.read_text(encoding="utf-8"))["CityObjects"]


def test_the_shared_data_has_cityjson_files() -> None:
    assert len(FILES) >= 7, FILES


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_file_ingests_and_every_object_is_served(path: Path, engine: Engine) -> None:
    expected = objects_in_file(path)
    crs = "EPSG:7415" if path.name in NO_CRS else None
    [report] = ingest_files(engine, [path], "c1", crs=crs)
    assert report.object_count == len(expected)
    by_type: dict[str, int] = {}
    for obj in expected.values():
        by_type[obj["type"]] = by_type.get(obj["type"], 0) + 1
    assert report.counts_by_type == by_type
    geometries = sum(len(o.get("geometry", [])) for o in expected.values())
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM city_object")).scalar_one()
        stored_geoms = conn.execute(text("SELECT count(*) FROM object_geometry")).scalar_one()
    assert stored == len(expected)
    assert stored_geoms == geometries  # every LoD kept

    client = TestClient(create_app(engine=engine))
    seen: list[str] = []
    url = "/collections/c1/items?limit=100"
    while url:
        body = client.get(url).json()
        assert body["numberMatched"] == len(expected)
        seen += [f["id"] for f in body["features"]]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else ""
    assert sorted(seen) == sorted(expected)


def test_attributes_semantics_and_relations_survive(engine: Engine) -> None:
    path = SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json"
    source = objects_in_file(path)
    ingest_files(engine, [path], "delft")
    client = TestClient(create_app(engine=engine))
    for oid, obj in source.items():
        feature = client.get(f"/collections/delft/items/{oid}").json()
        props = feature["properties"]
        assert props["type"] == obj["type"]
        attributes = obj.get("attributes", {})  # at the top level, under their own names
        assert {property_name(k): v for k, v in attributes.items()}.items() <= props.items()
        assert props["children"] == obj.get("children", [])
        assert props["parents"] == obj.get("parents", [])
        assert [g["lod"] for g in props["geometries"]] == [
            g["lod"] for g in obj.get("geometry", [])
        ]
        for got, want in zip(props["geometries"], obj.get("geometry", []), strict=True):
            assert got["semantics"] == want["semantics"]
            n_surfaces = sum(len(shell) for shell in want["boundaries"])
            assert len(got["geometry"]["coordinates"]) == n_surfaces


def test_materials_and_textures_are_kept(engine: Engine) -> None:
    materials = SHARED / "cityjson/denhaag_lod2_materials_v1.1/DH_01_subs.city.json"
    textured = SHARED / "cityjson/rotterdam_one_textured_v1.1/rotterdam_one.city.json"
    [m] = ingest_files(engine, [materials], "dh", crs="EPSG:7415")
    [t] = ingest_files(engine, [textured], "rdam")
    src_m = json.loads(materials.read_text())
    with engine.connect() as conn:
        appearance = conn.execute(
            text("SELECT appearance FROM dataset WHERE city_code = 'dh'")
        ).scalar_one()
        with_material = conn.execute(
            text(
                "SELECT count(*) FROM object_geometry "
                "WHERE city_code = 'dh' AND structure ? 'material'"
            )
        ).scalar_one()
        texture = conn.execute(
            text("SELECT structure -> 'texture' FROM object_geometry WHERE city_code = 'rdam'")
        ).scalar_one()
    assert appearance["materials"] == src_m["appearance"]["materials"]
    assert with_material == sum(
        1 for o in src_m["CityObjects"].values() for g in o.get("geometry", []) if "material" in g
    )
    # texture coordinates are carried as (u, v) pairs, no longer as indices into the file
    theme = next(iter(texture.values()))
    node = theme["values"]
    while not isinstance(node[0], int):  # descend to the first ring: [texture, uv, uv, ...]
        node = node[0]
    assert len(node) > 3 and all(len(uv) == 2 and 0 <= uv[0] <= 1.5 for uv in node[1:])
    assert any("texture images are missing" in w for w in t.warnings)


def test_geometry_templates_are_resolved(engine: Engine, tmp_path: Path) -> None:
    doc = {
        "type": "CityJSON",
        "version": "2.0",
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4548"},
        "transform": {"scale": [0.01, 0.01, 0.01], "translate": [500000.0, 4057000.0, 0.0]},
        "geometry-templates": {
            "templates": [
                {"type": "MultiSurface", "lod": "2", "boundaries": [[[0, 1, 2]], [[0, 2, 3]]]}
            ],
            "vertices-templates": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]],
        },
        "CityObjects": {
            "tree": {
                "type": "SolitaryVegetationObject",
                "geometry": [
                    {
                        "type": "GeometryInstance",
                        "template": 0,
                        "boundaries": [0],
                        "transformationMatrix": [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1],
                    }
                ],
            }
        },
        "vertices": [[1000, 2000, 300]],
    }
    path = tmp_path / "tree.city.json"
    path.write_text(json.dumps(doc))
    ingest_files(engine, [path], "t")
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT ST_NPoints(geom), structure -> 'template' ->> 'template', "
                "ST_ZMax(geom) FROM object_geometry"
            )
        ).one()
    assert row[0] == 8  # two closed triangles
    assert row[1] == "0"
    assert row[2] == pytest.approx(3.0 + 2.0, abs=1e-6)  # reference height + scaled template


def test_json_summary_from_the_command_line(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    path = SHARED / "cityjson/multi_lod_v2.0/multi_lod.city.json"
    result = CliRunner().invoke(
        main, ["ingest", str(path), "--city", "x", "--crs", "EPSG:7415", "--json"]
    )
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert report["object_count"] == 10
    assert report["counts_by_type"] == {"Building": 10}
    assert report["counts_by_lod"] == {"1.2": 10, "1.3": 10, "2.2": 10}
    assert report["dataset_id"] > 0 and report["source_crs"] == "EPSG:7415"
    assert any("geoid" in w for w in report["warnings"])
    # the same file again replaces the dataset instead of adding to it
    again = CliRunner().invoke(
        main, ["ingest", str(path), "--city", "x", "--crs", "EPSG:7415", "--json"]
    )
    assert json.loads(again.output)[0]["replaced"] is True
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM city_object")).scalar_one() == 10
        assert conn.execute(text("SELECT count(*) FROM dataset")).scalar_one() == 1


def test_extension_types_are_accepted(engine: Engine, tmp_path: Path) -> None:
    doc = json.loads((SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json").read_text())
    doc["extensions"] = {"Noise": {"url": "https://example.org/noise.ext.json", "version": "1.0"}}
    doc["CityObjects"]["barrier-1"] = {
        "type": "+NoiseBarrier",
        "attributes": {"+reduction": 9.5},
        "geometry": [{"type": "MultiLineString", "lod": "1", "boundaries": [[0, 1, 2]]}],
    }
    path = tmp_path / "ext.city.json"
    path.write_text(json.dumps(doc))
    [report] = ingest_files(engine, [path], "ext")
    assert report.counts_by_type["+NoiseBarrier"] == 1
    with engine.connect() as conn:
        kind = conn.execute(
            text(
                "SELECT GeometryType(g.geom) FROM object_geometry g JOIN city_object o "
                "ON o.id = g.object_id WHERE o.source_id = 'barrier-1'"
            )
        ).scalar_one()
    assert kind == "MULTILINESTRING"


def test_datasets_are_listed_and_deleted_whole(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    ingest_files(engine, [SHARED / "cityjson/delft_mixed_objects_v2.0/delft.city.json"], "d")
    ingest_files(engine, [SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json"], "d")
    runner = CliRunner()
    listed = json.loads(runner.invoke(main, ["datasets", "list", "--json"]).output)
    assert {(r["name"], r["object_count"]) for r in listed} == {
        ("delft.city.json", 570),
        ("3dbag_b2.city.json", 4),
    }
    gone = runner.invoke(main, ["datasets", "delete", "delft.city.json", "--city", "d"])
    assert gone.exit_code == 0 and "570 objects" in gone.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM city_object")).scalar_one() == 4
        assert conn.execute(text("SELECT count(*) FROM object_geometry")).scalar_one() == 2
    missing = runner.invoke(main, ["datasets", "delete", "nope", "--city", "d"])
    assert missing.exit_code == 2 and "no dataset 'nope'" in missing.output


def test_root_members_are_kept_with_the_dataset(engine: Engine, tmp_path: Path) -> None:
    doc = json.loads((SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json").read_text())
    doc["+census"] = {"year": 2024, "source": "made up for this test"}
    path = tmp_path / "root.city.json"
    path.write_text(json.dumps(doc))
    ingest_files(engine, [path], "r")
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT file_metadata FROM dataset")).scalar_one()
    assert kept["+census"] == doc["+census"]
    assert kept["metadata"] == doc["metadata"]
    assert kept["transform"] == doc["transform"]
