"""GDAL reads the Features API as a GIS client does: `ogr2ogr -f GPKG` from a running service
(Debian's gdal-bin, GDAL 3.6), and the GeoPackage it writes has every object, a typed column for
every property (the types the service publishes), and the geometry type of the layer."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ingest.pipeline import ingest_files
from tests.api.test_feature_properties import ATTRIBUTES, DELFT, made_city
from tests.browser.conftest import running_service

OGR2OGR = shutil.which("ogr2ogr")


@pytest.fixture(scope="module")
def service(
    new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Engine]]:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    ingest_files(engine, [made_city(tmp_path_factory.mktemp("made"))], "made")
    with running_service(engine) as base:
        yield base, engine


def _export(url: str, out: Path, *options: str) -> tuple[str, list[dict[str, Any]], list[dict]]:
    """ogr2ogr `url` into a GeoPackage; its layer's geometry type (with Z when it has one),
    columns and rows."""
    assert OGR2OGR, "ogr2ogr is missing: `make test` installs Debian's gdal-bin"
    done = subprocess.run(
        [OGR2OGR, "-f", "GPKG", str(out), f"OAPIF:{url}", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(out) as db:
        db.row_factory = sqlite3.Row
        [(table, geometry, z)] = db.execute(
            "SELECT table_name, geometry_type_name, z FROM gpkg_geometry_columns"
        ).fetchall()
        columns = [dict(c) for c in db.execute(f'PRAGMA table_info("{table}")')]
        rows = [dict(r) for r in db.execute(f'SELECT * FROM "{table}"')]  # noqa: S608 - GDAL's
    return geometry + ("Z" if z == 1 else ""), columns, rows


def _types(columns: list[dict]) -> dict[str, str]:
    return {c["name"]: c["type"] for c in columns}


def test_ogr2ogr_copies_every_object_of_delft_with_typed_columns(
    service: tuple[str, Engine], tmp_path: Path
) -> None:
    base, engine = service
    # GDAL 3.6 asks for pages of 10 (57 pages here) whatever the service declares
    geometry, columns, rows = _export(f"{base}/collections/delft", tmp_path / "delft.gpkg")
    with engine.connect() as conn:
        objects = dict(
            conn.execute(
                text(
                    "SELECT source_id, attributes ->> 'identificatiebagpnd' FROM city_object"
                    " WHERE city_code = 'delft'"
                )
            ).all()
        )
    assert len(rows) == len(objects) == 570
    assert {r["id"] for r in rows} == set(objects)
    assert geometry == "MULTIPOLYGONZ"
    types = _types(columns)
    assert types["measuredHeight"] == "REAL" and types["height_min"] == "REAL"
    assert types["type"] == "TEXT" and "attributes" not in types and "height" not in types
    # Delft's building ids are text that looks like a number: they stay text, digit for digit
    assert types["identificatiebagpnd"] == "TEXT"
    got = {r["id"]: r["identificatiebagpnd"] for r in rows}
    assert got == objects
    assert "503100000027998" in got.values()
    queryables = {k for k in types if k not in ("fid", "geom", "id")}
    assert len(queryables) == 41  # CIM's seven properties and 34 attributes, none left out


def test_ogr2ogr_makes_integer_real_boolean_and_text_columns(
    service: tuple[str, Engine], tmp_path: Path
) -> None:
    base, _ = service
    url = f"{base}/collections/made?type=Building"  # one object type: one geometry type
    geometry, columns, rows = _export(url, tmp_path / "made.gpkg", "-oo", "PAGE_SIZE=1000")
    assert geometry == "MULTIPOLYGONZ"
    types = _types(columns)
    assert types["storeys"] in ("INTEGER", "MEDIUMINT")
    assert types["height"] == "REAL"
    assert types["parcel"] == "REAL"  # beyond 32 bits: a real, not a clipped integer
    assert types["public"] == "BOOLEAN"
    assert types["code"] == "TEXT" and types["level"] == "TEXT"
    assert types["attribute_type"] == "TEXT" and types["attribute_limit"] in (
        "INTEGER",
        "MEDIUMINT",
    )
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == set(ATTRIBUTES)
    assert by_id["b1"]["code"] == "007" and by_id["b2"]["code"] == "12"  # text stays text
    assert by_id["b1"]["height"] == 23.0 and by_id["b2"]["storeys"] == 8
    assert by_id["b1"]["parcel"] == 3_000_000_000
    assert by_id["b1"]["public"] == 1 and by_id["b2"]["public"] == 0
    assert by_id["b2"]["level"] == "3a" and by_id["b1"]["level"] == "3"  # mixed: text
    assert by_id["b1"]["attribute_type"] == "residential" and by_id["b1"]["type"] == "Building"


def test_a_city_of_several_geometry_types_is_one_layer_of_any_geometry(
    service: tuple[str, Engine], tmp_path: Path
) -> None:
    """GDAL takes a layer's geometry type from its first page (here: solids and a point); the
    object types' own layers (previous test) each have one."""
    base, _ = service
    geometry, columns, rows = _export(f"{base}/collections/made", tmp_path / "all.gpkg")
    assert geometry in ("GEOMETRY", "GEOMETRYZ")
    assert {r["id"] for r in rows} == {*ATTRIBUTES, "lamp"}
    # code is text in the buildings and a number in the lamp: a text column holds both
    assert _types(columns)["code"] == "TEXT"
    assert {r["id"]: r["code"] for r in rows} == {"b1": "007", "b2": "12", "b3": "23", "lamp": "7"}
