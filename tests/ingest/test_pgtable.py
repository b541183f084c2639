"""Buildings read from PostGIS tables (`cim ingest "PG:..." --table ...`), as pg2b3dm's and
py3dtiles' users keep them: the tables are made in the test's own PostGIS, their vertices taken
from a real 3DBAG file. 3D surfaces keep every vertex where PROJ puts it (5 cm), walls included,
typed as 3DBAG types them; 2D polygons are extruded by their height; attributes keep PostgreSQL's
types; bad rows are refused by table and row with nothing written; the password never shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.errors import IngestError
from cli.main import main
from ingest.ewkb import EwkbError, read_surfaces
from ingest.model import ReadOptions
from ingest.pgsource import table_source
from ingest.pipeline import ingest_files
from tests.conftest import shared

BAG = "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json"
TOLERANCE_M = 0.05


def _buildings() -> list[dict[str, Any]]:
    """The two 3DBAG buildings: id, attributes, surfaces (closed rings) and their 3DBAG types."""
    doc = json.loads(shared(BAG).read_text(encoding="utf-8"))
    t = doc["transform"]
    vertices = np.array(doc["vertices"]) * t["scale"] + t["translate"]
    out = []
    for oid, obj in doc["CityObjects"].items():
        if obj["type"] != "Building":
            continue
        [part] = obj["children"]
        [geom] = doc["CityObjects"][part]["geometry"]
        [shell] = geom["boundaries"]
        [values] = geom["semantics"]["values"]
        surfaces = [[np.vstack((vertices[r], vertices[r[:1]])) for r in s] for s in shell]
        types = [geom["semantics"]["surfaces"][v]["type"] for v in values]
        out.append(
            {"id": oid, "attributes": obj["attributes"], "surfaces": surfaces, "types": types}
        )
    return out


def _ewkt(kind: str, surfaces: list[list[np.ndarray]], srid: int) -> str:
    def ring(r: np.ndarray) -> str:
        return "(" + ", ".join(" ".join(repr(float(c)) for c in p) for p in r) + ")"

    parts = ", ".join("(" + ", ".join(ring(r) for r in s) + ")" for s in surfaces)
    return f"SRID={srid};{kind} Z ({parts})"


def _conninfo(engine: Engine, uri: bool = False) -> str:
    u = engine.url
    if uri:
        return f"PG:postgresql://{u.username}:{u.password}@{u.host}:{u.port}/{u.database}"
    return (
        f"PG:host={u.host} port={u.port} dbname={u.database} user={u.username} "
        f"password={u.password}"
    )


def _run(engine: Engine, *statements: str, params: tuple[Any, ...] = ()) -> None:
    u = engine.url
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
    ) as conn:
        for s in statements:
            conn.execute(s, params if "%s" in s else None)


def _ingest(engine: Engine, table: str, city: str, **kw: Any) -> Any:
    options = kw.pop("options", None)
    crs = kw.pop("crs", None)
    [report] = ingest_files(
        engine, [table_source(_conninfo(engine), table=table, **kw)], city, crs=crs, options=options
    )
    return report


def _geometries(engine: Engine, city: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT o.source_id, o.attributes, g.type, g.lod, g.structure, g.geom,"
                    " g.mesh_surfaces, ST_NumGeometries(g.geom) AS surfaces, o.z_min, o.z_max,"
                    " o.footprint IS NOT NULL AS has_footprint"
                    " FROM city_object o JOIN object_geometry g"
                    " ON g.city_code = o.city_code AND g.object_id = o.id"
                    " WHERE o.city_code = :c ORDER BY o.source_id, g.idx"
                ),
                {"c": city},
            ).mappings()
        )


def _stored_rings(engine: Engine, city: str, source_id: str) -> dict[tuple[int, int], np.ndarray]:
    """Every stored vertex (lon, lat, h) by (surface, ring), closing vertex dropped."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT (d.path)[1], (d.path)[2], ST_X(d.geom), ST_Y(d.geom), ST_Z(d.geom)"
                " FROM city_object o JOIN object_geometry g"
                " ON g.city_code = o.city_code AND g.object_id = o.id,"
                " LATERAL ST_DumpPoints(g.geom) d"
                " WHERE o.city_code = :c AND o.source_id = :s ORDER BY d.path"
            ),
            {"c": city, "s": source_id},
        ).all()
    rings: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    for p, r, x, y, z in rows:
        rings.setdefault((p - 1, r - 1), []).append((x, y, z))
    return {k: np.array(v)[:-1] for k, v in rings.items()}


def _ecef(llh: np.ndarray) -> np.ndarray:
    t = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    return np.column_stack(t.transform(llh[:, 0], llh[:, 1], llh[:, 2]))


def _assert_where_proj_puts_them(
    engine: Engine, city: str, building: dict[str, Any], crs: str
) -> int:
    """Every vertex of every surface (walls included) against PROJ; returns how many."""
    proj = Transformer.from_crs(crs, "EPSG:4979", always_xy=True)
    stored = _stored_rings(engine, city, building["id"])
    assert len({k[0] for k in stored}) == len(building["surfaces"])
    checked = 0
    for s, surface in enumerate(building["surfaces"]):
        for r, ring in enumerate(surface):
            src = ring[:-1]
            expected = _ecef(np.column_stack(proj.transform(src[:, 0], src[:, 1], src[:, 2])))
            got = _ecef(stored[(s, r)])
            assert got.shape == expected.shape, (s, r)
            error = np.linalg.norm(got - expected, axis=1).max()
            assert error < TOLERANCE_M, f"surface {s} ring {r}: {error:.3f} m off"
            checked += len(src)
    return checked


@pytest.fixture(scope="module")
def bag() -> list[dict[str, Any]]:
    return _buildings()


@pytest.fixture
def pg2b3dm(engine: Engine, bag: list[dict[str, Any]]) -> Iterator[Engine]:
    """pg2b3dm's typical table: id serial, geometry(MultiPolygonZ, 28992), height float."""
    _run(
        engine,
        "CREATE TABLE public.buildings (id serial, geom geometry(MultiPolygonZ, 28992),"
        " height float, name text)",
    )
    for b in bag:
        _run(
            engine,
            "INSERT INTO public.buildings (geom, height, name)"
            " VALUES (ST_GeomFromEWKT(%s), %s, %s)",
            params=(
                _ewkt("MULTIPOLYGON", b["surfaces"], 28992),
                b["attributes"]["b3_h_dak_max"] - b["attributes"]["b3_h_maaiveld"],
                b["id"],
            ),
        )
    yield engine


def test_multipolygon_z_keeps_every_vertex_and_every_wall(
    pg2b3dm: Engine, bag: list[dict[str, Any]]
) -> None:
    report = _ingest(pg2b3dm, "buildings", "delft", lod="2.2")
    assert report.format == "PostGIS table" and report.source_crs == "EPSG:28992"
    assert report.dataset == "public.buildings" and report.counts_by_type == {"Building": 2}
    assert report.counts_by_lod == {"2.2": 2}
    assert not any("no area" in w for w in report.warnings), report.warnings
    rows = _geometries(pg2b3dm, "delft")
    assert [r["source_id"] for r in rows] == ["1", "2"]
    vertices = 0
    for row, building in zip(rows, bag, strict=True):
        n = len(building["surfaces"])
        assert row["type"] == "MultiSurface" and row["lod"] == "2.2" and row["surfaces"] == n
        # every surface is drawn: walls have no area seen from above, and are still triangulated
        drawn = set(np.frombuffer(row["mesh_surfaces"], dtype="<u4").tolist())
        assert drawn == set(range(n))
        # the surface types inferred from orientation are 3DBAG's own, surface for surface
        assert row["structure"]["surface_types"] == building["types"]
        assert building["types"].count("WallSurface") >= 10
        assert row["structure"]["closed"] is True
        assert row["has_footprint"]  # from the ground surface: the model indicators see it
        assert row["attributes"] == {
            "height": pytest.approx(
                building["attributes"]["b3_h_dak_max"] - building["attributes"]["b3_h_maaiveld"]
            ),
            "name": building["id"],
        }
        vertices += _assert_where_proj_puts_them(
            pg2b3dm, "delft", {**building, "id": row["source_id"]}, "EPSG:28992"
        )
    assert vertices == sum(len(r) - 1 for b in bag for s in b["surfaces"] for r in s)


def test_polyhedral_surface_in_rd_new_with_typed_attributes(
    engine: Engine, bag: list[dict[str, Any]]
) -> None:
    _run(
        engine,
        "CREATE SCHEMA bag",
        "CREATE TABLE bag.pand (identificatie text PRIMARY KEY,"
        " geom geometry(PolyhedralSurfaceZ, 28992), status text, oorspronkelijkbouwjaar integer,"
        " b3_h_dak_50p numeric(8, 3), b3_volume_lod22 double precision, b3_kas_warenhuis boolean,"
        " documentdatum date, eindgeldigheid date, tijdstipregistratie timestamptz,"
        " b3_val3dity_lod22 jsonb, bronnen text[])",
    )
    for b in bag:
        a = b["attributes"]
        _run(
            engine,
            "INSERT INTO bag.pand VALUES (%s, ST_GeomFromEWKT(%s), %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s::jsonb, %s)",
            params=(
                a["identificatie"],
                _ewkt("POLYHEDRALSURFACE", b["surfaces"], 28992),
                a["status"],
                a["oorspronkelijkbouwjaar"],
                a["b3_h_dak_50p"],
                a["b3_volume_lod22"],
                a["b3_kas_warenhuis"],
                a["documentdatum"],
                a["eindgeldigheid"],
                a["tijdstipregistratie"],
                a["b3_val3dity_lod22"],
                [a["b3_pw_bron"], "BAG"],
            ),
        )
    report = _ingest(engine, "bag.pand", "0503")
    assert report.counts_by_lod == {"none": 2}  # no LoD claimed without --lod
    assert any("no LoD is claimed" in w for w in report.warnings)
    rows = {r["source_id"]: r for r in _geometries(engine, "0503")}
    assert set(rows) == {b["id"] for b in bag}
    for b in bag:
        row, a = rows[b["id"]], b["attributes"]
        assert row["type"] == "CompositeSurface" and row["surfaces"] == len(b["surfaces"])
        assert row["structure"]["source"] == "PostGIS POLYHEDRALSURFACE Z"
        assert row["structure"]["surface_types"] == b["types"]
        stored = row["attributes"]
        registered = datetime.fromisoformat(stored.pop("tijdstipregistratie"))
        assert registered == datetime.fromisoformat(a["tijdstipregistratie"])
        assert stored == {
            "status": a["status"],
            "oorspronkelijkbouwjaar": a["oorspronkelijkbouwjaar"],
            "b3_h_dak_50p": a["b3_h_dak_50p"],
            "b3_volume_lod22": a["b3_volume_lod22"],
            "b3_kas_warenhuis": False,
            "documentdatum": a["documentdatum"],
            "eindgeldigheid": None,
            "b3_val3dity_lod22": [],
            "bronnen": [a["b3_pw_bron"], "BAG"],
        }
        assert isinstance(stored["oorspronkelijkbouwjaar"], int)
        assert isinstance(stored["b3_h_dak_50p"], float)
        assert _assert_where_proj_puts_them(engine, "0503", b, "EPSG:28992") > 100


def test_earth_centred_table_and_inward_shells(engine: Engine, bag: list[dict[str, Any]]) -> None:
    """pg2b3dm's other usual CRS, EPSG:4978: vertices land where they are, surface types are
    read in the local up direction; a shell stored inside out is recognised as such."""
    to_ecef = Transformer.from_crs("EPSG:28992", "EPSG:4978", always_xy=True)
    b = bag[0]
    ecef = [[np.column_stack(to_ecef.transform(*r.T)) for r in s] for s in b["surfaces"]]
    inward = [[r[::-1] for r in s] for s in b["surfaces"]]
    _run(
        engine,
        "CREATE TABLE ecef (id int PRIMARY KEY, geom geometry(MultiPolygonZ, 4978))",
        "CREATE TABLE inside_out (id int PRIMARY KEY, geom geometry(PolyhedralSurfaceZ, 28992))",
    )
    _run(
        engine,
        "INSERT INTO ecef VALUES (1, ST_GeomFromEWKT(%s))",
        params=(_ewkt("MULTIPOLYGON", ecef, 4978),),
    )
    _run(
        engine,
        "INSERT INTO inside_out VALUES (1, ST_GeomFromEWKT(%s))",
        params=(_ewkt("POLYHEDRALSURFACE", inward, 28992),),
    )
    _ingest(engine, "ecef", "ecef")
    [row] = _geometries(engine, "ecef")
    assert row["structure"]["surface_types"] == b["types"]
    stored = _stored_rings(engine, "ecef", "1")
    for s, surface in enumerate(ecef):
        got = _ecef(stored[(s, 0)])
        assert np.linalg.norm(got - surface[0][:-1], axis=1).max() < TOLERANCE_M
    report = _ingest(engine, "inside_out", "inv")
    [row] = _geometries(engine, "inv")
    assert row["structure"]["surface_types"] == b["types"]
    assert any("face inwards" in w for w in report.warnings)


def test_tin_each_triangle_is_a_surface(engine: Engine) -> None:
    _run(
        engine,
        "CREATE TABLE tins (gid int, geom geometry(TinZ, 28992), kind text)",
        "INSERT INTO tins VALUES (1, ST_GeomFromEWKT('SRID=28992;TIN Z ("
        "((85000 446500 0, 85010 446500 0, 85010 446500 8, 85000 446500 0)),"
        "((85000 446500 0, 85010 446500 8, 85000 446500 8, 85000 446500 0)),"
        "((85000 446500 8, 85010 446500 8, 85005 446505 12, 85000 446500 8)))'), 'gable')",
    )
    report = _ingest(engine, "tins", "tin")  # `gid` is found as the id column
    assert report.counts_by_type == {"Building": 1}
    [row] = _geometries(engine, "tin")
    assert row["source_id"] == "1" and row["surfaces"] == 3
    assert row["structure"]["surface_types"] == ["WallSurface", "WallSurface", "RoofSurface"]
    assert len(np.frombuffer(row["mesh_surfaces"], dtype="<u4")) == 3  # one triangle each
    assert row["z_max"] - row["z_min"] == pytest.approx(12.0, abs=1e-3)
    assert row["attributes"] == {"kind": "gable"}


def test_2d_polygons_are_extruded_by_their_height(engine: Engine) -> None:
    _run(
        engine,
        "CREATE TABLE footprints (id int PRIMARY KEY, geom geometry(MultiPolygon, 28992),"
        " hoogte real, verdiepingen int, maaiveld numeric)",
        "INSERT INTO footprints VALUES"
        " (1, 'SRID=28992;MULTIPOLYGON(((85000 446500, 85000 446520, 85020 446520,"
        " 85020 446500, 85000 446500), (85005 446505, 85015 446505, 85015 446515,"
        " 85005 446515, 85005 446505)))', 12.5, 4, 1.25),"
        " (2, 'SRID=28992;MULTIPOLYGON(((85100 446500, 85110 446500, 85110 446510,"
        " 85100 446510, 85100 446500)))', NULL, NULL, NULL),"
        " (3, NULL, 9, 3, NULL)",
    )
    report = _ingest(
        engine, "footprints", "fp", options=ReadOptions(height_attr="hoogte", base_attr="maaiveld")
    )
    assert report.counts_by_lod == {"1": 1, "0": 1}
    assert report.counts_by_type == {"Building": 3}  # the row without geometry is kept too
    assert "1 row is without geometry (NULL or empty): kept with attributes only" in (
        report.warnings
    )
    assert any(
        w.startswith("1 footprint is without a usable height in 'hoogte'") for w in report.warnings
    )
    solid, flat = _geometries(engine, "fp")
    assert solid["type"] == "Solid" and solid["lod"] == "1"
    assert (solid["z_min"], solid["z_max"]) == (pytest.approx(1.25), pytest.approx(13.75))
    assert solid["surfaces"] == 2 + 8  # ground, roof, 4 outer and 4 courtyard walls
    assert flat["type"] == "MultiSurface" and flat["lod"] == "0"
    _ingest(
        engine,
        "footprints",
        "floors",
        options=ReadOptions(floors_attr="verdiepingen", storey_height=3.0),
    )
    solid, _ = _geometries(engine, "floors")
    assert solid["z_max"] - solid["z_min"] == pytest.approx(12.0)  # 4 floors of 3 m, base z 0


def test_a_bad_row_is_named_and_nothing_is_written(engine: Engine) -> None:
    _run(
        engine,
        "CREATE TABLE mixed (id int PRIMARY KEY, geom geometry(GeometryZ, 28992))",
        "INSERT INTO mixed VALUES (1, 'SRID=28992;POLYGON Z((85000 446500 0, 85010 446500 0,"
        " 85010 446500 5, 85000 446500 0))'),"
        " (7, 'SRID=28992;GEOMETRYCOLLECTION Z(POINT Z(85000 446500 0))'),"
        " (8, 'SRID=28992;LINESTRING Z(85000 446500 0, 85001 446500 0)')",
    )
    with pytest.raises(IngestError) as caught:
        _ingest(engine, "mixed", "bad")
    message = str(caught.value)
    assert message.startswith("table public.mixed (PG:")
    assert "object '7'" in message and "GEOMETRYCOLLECTION Z" in message
    assert "ST_CollectionExtract" in message
    assert engine.url.password not in message
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dataset")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM city_object")).scalar_one() == 0
    _run(engine, "DELETE FROM mixed WHERE id = 7")
    with pytest.raises(IngestError, match=r"object '8': .* LINESTRING Z"):
        _ingest(engine, "mixed", "bad")


def test_columns_are_chosen_or_the_choice_is_asked_for(engine: Engine) -> None:
    _run(
        engine,
        "CREATE TABLE two (ref text, a geometry(PolygonZ, 28992), b geometry(Point, 28992),"
        " note text, n int)",
        "INSERT INTO two VALUES ('x1', 'SRID=28992;POLYGON Z((85000 446500 0, 85010 446500 0,"
        " 85010 446500 5, 85000 446500 0))', 'SRID=28992;POINT(85000 446500)', 'hi', 3)",
    )
    with pytest.raises(
        IngestError, match=r"several geometry columns.*a geometry\(PolygonZ,28992\)"
    ):
        _ingest(engine, "two", "c")
    with pytest.raises(IngestError, match=r"no single-column primary key.*--id-column.*ref"):
        _ingest(engine, "two", "c", geometry_column="a")
    with pytest.raises(IngestError, match=r"--attributes 'nope' is not a column"):
        _ingest(engine, "two", "c", geometry_column="a", id_column="ref", attributes=("nope",))
    report = _ingest(engine, "two", "c", geometry_column="A", id_column="ref")
    assert "not kept as attributes: the other geometry columns b" in report.warnings
    [row] = _geometries(engine, "c")
    assert row["source_id"] == "x1" and row["attributes"] == {"note": "hi", "n": 3}
    _ingest(engine, "two", "d", geometry_column="a", id_column="ref", attributes=("n",))
    assert _geometries(engine, "d")[0]["attributes"] == {"n": 3}
    _ingest(engine, "two", "e", geometry_column="a", id_column="ref", attributes=())
    assert _geometries(engine, "e")[0]["attributes"] == {}
    with pytest.raises(
        IngestError,
        match=r"no table public\.nope; tables with a geometry column: .*"
        r"public\.two \(a\), public\.two \(b\)",
    ):
        _ingest(engine, "nope", "c")
    with pytest.raises(IngestError, match=r"name the table to read with --table"):
        ingest_files(engine, [table_source(_conninfo(engine))], "c")


def test_srid_from_the_rows_or_from_crs(engine: Engine) -> None:
    _run(
        engine,
        "CREATE TABLE loose (id int PRIMARY KEY, geom geometry)",
        "INSERT INTO loose VALUES (1, 'SRID=28992;POLYGON Z((85000 446500 0, 85010 446500 0,"
        " 85010 446500 5, 85000 446500 0))')",
        "CREATE TABLE nosrid (id int PRIMARY KEY, geom geometry)",
        "INSERT INTO nosrid VALUES (1, 'POLYGON Z((85000 446500 0, 85010 446500 0,"
        " 85010 446500 5, 85000 446500 0))')",
        "CREATE VIEW v_loose AS SELECT id, geom FROM loose",
    )
    assert _ingest(engine, "loose", "a").source_crs == "EPSG:28992"
    assert _ingest(engine, "v_loose", "v").counts_by_type == {"Building": 1}  # a view reads too
    with pytest.raises(IngestError, match=r"no CRS.*--crs"):
        _ingest(engine, "nosrid", "b")
    assert _ingest(engine, "nosrid", "b", crs="EPSG:28992").source_crs == "EPSG:28992"
    _run(
        engine,
        "INSERT INTO loose VALUES (2, 'SRID=4326;POLYGON Z((4 52 0, 4.1 52 0, 4.1 52 5, 4 52 0))')",
    )
    with pytest.raises(IngestError, match=r"several SRIDs \((28992, 4326|4326, 28992)\)"):
        _ingest(engine, "loose", "a")


def test_the_password_is_never_shown(engine: Engine) -> None:
    _run(
        engine,
        "CREATE TABLE b (id int PRIMARY KEY, geom geometry(PolygonZ, 28992))",
        "INSERT INTO b VALUES (1, 'SRID=28992;POLYGON Z((85000 446500 0, 85010 446500 0,"
        " 85010 446500 5, 85000 446500 0))')",
    )
    password = str(engine.url.password)
    for uri in (False, True):
        source = table_source(_conninfo(engine, uri), table="b")
        assert password not in str(source) and password not in repr(source)
        [report] = ingest_files(engine, [source], f"p{int(uri)}")
        assert password not in json.dumps(report.to_dict())
        assert "password=***" in report.path
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT source_path, file_metadata::text FROM dataset")).all()
    assert stored and all(password not in p + m for p, m in stored)
    wrong = _conninfo(engine).replace(password, "Wr0ngPassw0rd")
    with pytest.raises(IngestError, match=r"cannot connect") as caught:
        ingest_files(engine, [table_source(wrong, table="b")], "w")
    assert "Wr0ngPassw0rd" not in str(caught.value) and "password=***" in str(caught.value)
    with pytest.raises(IngestError, match=r"not a PostgreSQL connection string") as caught:
        table_source(f"PG:host=x password={password} nonsense")
    assert password not in str(caught.value)


def test_a_sql_dump_is_refused_with_the_way_to_load_it(engine: Engine, tmp_path: Path) -> None:
    dump = tmp_path / "buildings.sql"
    dump.write_text("-- PostgreSQL database dump\nCREATE TABLE public.buildings (id int);\n")
    custom = tmp_path / "buildings.backup_file"
    custom.write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 64)
    for path in (dump, custom):
        with pytest.raises(
            IngestError, match=r"psql -d DB -f FILE\.sql.*cim ingest \"PG:dbname=DB\""
        ):
            ingest_files(engine, [path], "x")


def test_from_the_command_line(
    pg2b3dm: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIM_DATABASE_URL", pg2b3dm.url.render_as_string(hide_password=False))
    password = str(pg2b3dm.url.password)
    result = CliRunner().invoke(
        main,
        ["ingest", _conninfo(pg2b3dm, uri=True), "--table", "public.buildings", "--city", "delft",
         "--lod", "2.2", "--attributes", "name", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["object_count"] == 2 and report["counts_by_lod"] == {"2.2": 2}
    assert password not in result.output
    assert _geometries(pg2b3dm, "delft")[0]["attributes"] == {"name": _buildings()[0]["id"]}
    result = CliRunner().invoke(
        main, ["ingest", _conninfo(pg2b3dm), "--table", "nope", "--city", "delft"]
    )
    assert result.exit_code == 2 and "no table public.nope" in result.output
    assert password not in result.output
    result = CliRunner().invoke(
        main, ["ingest", str(tmp_path / "a.gpkg"), "--table", "t", "--city", "x"]
    )
    assert (
        result.exit_code == 2 and "--table read a PostGIS table: give a PG: source" in result.output
    )


def test_ewkb_forms_postgis_writes(engine: Engine) -> None:
    """Big- and little-endian, ISO and extended, Z, M and ZM: the same rings come back."""
    u = engine.url
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
    ) as conn:
        g = "'SRID=28992;POLYHEDRALSURFACE ZM(((0 0 1 9, 1 0 2 9, 1 1 3 9, 0 0 1 9)))'::geometry"
        ewkb_ndr, ewkb_xdr, iso_xdr, xym = conn.execute(
            f"SELECT ST_AsEWKB({g}, 'NDR'), ST_AsEWKB({g}, 'XDR'), ST_AsBinary({g}, 'XDR'),"
            f" ST_AsEWKB(ST_Force3DM({g}))"
        ).fetchone()
    ring = np.array([[0, 0, 1], [1, 0, 2], [1, 1, 3], [0, 0, 1]], dtype=float)
    for data in (ewkb_ndr, ewkb_xdr, iso_xdr):
        read = read_surfaces(data)
        assert read.type == "POLYHEDRALSURFACE ZM" and read.has_z and read.has_m
        np.testing.assert_array_equal(read.polygons[0][0], ring)
    assert read_surfaces(ewkb_ndr).srid == 28992 and read_surfaces(iso_xdr).srid is None
    no_z = read_surfaces(xym)  # x y m: the m is no height
    assert not no_z.has_z and (no_z.polygons[0][0][:, 2] == 0).all()
    with pytest.raises(EwkbError, match="runs past the end"):
        read_surfaces(bytes(ewkb_ndr)[:-8])
