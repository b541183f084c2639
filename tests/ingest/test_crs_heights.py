"""Real files placed right: compound and AdV CRS names with their axis order, files outside their
CRS refused, heights above sea level put on the ellipsoid (the national geoid when installed,
else EGM96, and the report says which), and PROJ's ballpark for CGCS2000 reported.

The Bavarian case is built from a real file: the Berlin Moabit building (UTM zone 33 + DHHN92)
with its coordinates converted by PROJ to DHDN / Gauss-Kruger zone 4, written easting first as
German state surveys write them, and its srsName replaced by the names such files carry."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lxml import etree
from pyproj import CRS, Transformer
from sqlalchemy import Engine, text

from cim.crs import crs_label, parse_crs
from cim.errors import IngestError
from cim.heights import geoid_heights, transformations
from cli.main import main
from ingest.pipeline import ingest_files
from tests.conftest import shared
from tests.unit.test_crs import NATIONAL_TOLERANCE_M, RDNAPTRANS

BERLIN = shared("citygml2/berlin_moabit_1bldg/Berlin_Moabit_1Bldg_v2.gml")
PLATEAU = shared("citygml2/tokyo_plateau_lod2_textured/53394517_bldg_6697_2_op_CityGML2.gml")
SHANGHAI = shared(
    "footprints/cn_shanghai_osm_buildings/shanghai_osm_buildings_4490_DERIVED.geojson"
)
LYON = shared("citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml")
COMPOUND_GK4 = "urn:ogc:def:crs,crs:EPSG::31468,crs:EPSG::5783"
ADV_GK4 = "urn:adv:crs:DE_DHDN_3GK4*DE_DHN92_NH"
TOLERANCE_M = 0.05
COORDS = re.compile(r"(<gml:(?:posList|pos|lowerCorner|upperCorner)[^>]*>)([^<]*)")
SRS = re.compile(r'\s*srsName="[^"]*"')


def _best(source: str) -> Transformer:
    """PROJ's own best transformation to WGS 84 (3D), without its zero-shift guesses."""
    for t in transformations(parse_crs(source), 4979).transformers:
        if "ballpark geographic" not in t.description.lower():
            return t
    raise AssertionError(f"PROJ has no transformation for {source}")


def _berlin_in_gk4(srs_name: str | None, convert: bool = True) -> str:
    """The Berlin file in DHDN / GK zone 4 (easting first, heights kept), named `srs_name`."""
    to_gk4 = Transformer.from_crs("EPSG:25833", "EPSG:31468", always_xy=True)

    def convert_list(m: re.Match[str]) -> str:
        v = np.array(m.group(2).split(), dtype=float).reshape(-1, 3)
        if convert:
            v[:, 0], v[:, 1] = to_gk4.transform(v[:, 0], v[:, 1])
        return m.group(1) + " ".join(f"{c:.4f}" for c in v.ravel())

    body = COORDS.sub(convert_list, BERLIN.read_text())
    if srs_name is None:
        return SRS.sub("", body)
    return SRS.sub(f' srsName="{srs_name}"', body)


def _berlin_expected() -> np.ndarray:
    """Every vertex of the original file where PROJ puts it (UTM 33), on its EGM96 heights."""
    v = np.vstack(
        [
            np.array(m.group(2).split(), dtype=float).reshape(-1, 3)
            for m in COORDS.finditer(BERLIN.read_text())
            if "posList" in m.group(1) or "<gml:pos" in m.group(1)
        ]
    )
    lon, lat, _ = _best("EPSG:25833").transform(v[:, 0], v[:, 1], np.zeros(len(v)))
    return np.column_stack((lon, lat, v[:, 2] + geoid_heights(lon, lat)))


def _stored(engine: Engine, city: str) -> np.ndarray:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ST_X(d.geom), ST_Y(d.geom), ST_Z(d.geom) FROM object_geometry g,"
                " LATERAL ST_DumpPoints(g.geom) d WHERE g.city_code = :c"
            ),
            {"c": city},
        ).all()
    return np.array(rows, dtype=float)


def _metres_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each point of `a`, the horizontal distance to the nearest of `b` (metres)."""
    scale = np.array([111_320 * np.cos(np.radians(a[:, 1].mean())), 110_950])
    d = np.linalg.norm((a[:, None, :2] - b[None, :, :2]) * scale, axis=2)
    return d.min(axis=1)


def _assert_berlin(engine: Engine, city: str) -> None:
    stored, expected = _stored(engine, city), _berlin_expected()
    assert len(stored) >= 30
    assert _metres_apart(stored, expected).max() < TOLERANCE_M
    assert _metres_apart(expected, stored).max() < TOLERANCE_M
    assert 13.35 < stored[:, 0].mean() < 13.37 and 52.50 < stored[:, 1].mean() < 52.52  # Moabit
    # heights: DHHN92 (33-37 m) plus the geoid (about 39.5 m in Berlin)
    nearest = [int(np.argmin(np.abs(expected - p).sum(axis=1))) for p in stored]
    assert np.abs(stored[:, 2] - expected[nearest, 2]).max() < 0.01
    assert 70 < stored[:, 2].min() < 80


def _ingest_text(engine: Engine, tmp_path: Path, body: str, city: str, **kw: object) -> object:
    path = tmp_path / f"{city}.gml"
    path.write_text(body)
    [report] = ingest_files(engine, [path], city, **kw)  # type: ignore[arg-type]
    return report


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine]) -> Engine:
    return new_database()


# ------------------------------------------------------------------- 1. compound names
def test_a_compound_srsname_written_easting_first_lands_in_berlin(
    db: Engine, tmp_path: Path
) -> None:
    report = _ingest_text(db, tmp_path, _berlin_in_gk4(COMPOUND_GK4), "gk4-compound")
    assert report.source_crs == "EPSG:31468+5783"  # type: ignore[attr-defined]
    assert any("easting (longitude) first" in w for w in report.warnings)  # type: ignore[attr-defined]
    _assert_berlin(db, "gk4-compound")


def test_every_vertex_is_where_proj_puts_it(db: Engine, tmp_path: Path) -> None:
    """Stored positions against PROJ's own transformation of the file's coordinates."""
    body = _berlin_in_gk4(COMPOUND_GK4)
    _ingest_text(db, tmp_path, body, "gk4-proj")
    v = np.vstack(
        [
            np.array(m.group(2).split(), dtype=float).reshape(-1, 3)
            for m in COORDS.finditer(body)
            if "posList" in m.group(1)
        ]
    )
    lon, lat, _ = _best("EPSG:31468+5783").transform(v[:, 0], v[:, 1], v[:, 2])
    stored = _stored(db, "gk4-proj")
    assert _metres_apart(np.column_stack((lon, lat)), stored).max() < TOLERANCE_M


def test_a_file_outside_its_crs_is_refused_whatever_the_axis_order(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UTM zone 33 coordinates left as they are, but labelled Gauss-Kruger zone 4."""
    path = tmp_path / "mislabelled.gml"
    path.write_text(_berlin_in_gk4(COMPOUND_GK4, convert=False))
    with pytest.raises(IngestError, match="outside the area of use of EPSG:31468"):
        ingest_files(engine, [path], "wrong")
    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(main, ["ingest", str(path), "--city", "wrong"])
    assert result.exit_code == 2
    assert "mislabelled.gml" in result.output and "whichever axis comes first" in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM city_object")).scalar_one() == 0


# ------------------------------------------------------------------------- 2. AdV names
def test_the_adv_name_of_bavarian_files_is_known(db: Engine, tmp_path: Path) -> None:
    """AdV CRSs are defined easting first: no axis question, no warning about it."""
    report = _ingest_text(db, tmp_path, _berlin_in_gk4(ADV_GK4), "gk4-adv")
    assert report.source_crs == "EPSG:31468+5783"  # type: ignore[attr-defined]
    assert not any("axis" in w or "first" in w for w in report.warnings)  # type: ignore[attr-defined]
    _assert_berlin(db, "gk4-adv")


@pytest.mark.parametrize("crs", ["EPSG:31468+5783", COMPOUND_GK4, ADV_GK4])
def test_crs_on_the_command_line_in_the_form_cim_prints(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crs: str
) -> None:
    path = tmp_path / "nosrs.gml"
    path.write_text(_berlin_in_gk4(None))
    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(main, ["ingest", str(path), "--city", "by", "--crs", crs, "--json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert report["source_crs"] == "EPSG:31468+5783"
    assert report["transformation"]["heights"]["method"] == "global EGM96 geoid"
    assert report["transformation"]["horizontal"]["grids"] == ["BETA2007.gsb"]
    _assert_berlin(engine, "by")
    text_out = CliRunner().invoke(main, ["ingest", str(path), "--city", "by", "--crs", crs])
    assert "heights: global EGM96 geoid (egm96_15.gtx), expected within 2 m" in text_out.output


# ------------------------------------------------------------------------------ 3. heights
def test_plateau_heights_are_put_on_the_ellipsoid_with_egm96(db: Engine) -> None:
    """Tokyo (JGD2011 heights, latitude first): the Japanese geoid grid is not installed, so
    EGM96 (36.7 m here) lifts every vertex; the report says so and how well it fits."""
    [report] = ingest_files(db, [PLATEAU], "tokyo")
    heights = report.transformation["heights"]
    assert heights["method"] == "global EGM96 geoid" and heights["accuracy_m"] == 2.0
    assert any("jp_gsi_gsigeo2011.tif" in w for w in report.warnings)
    ring = next(etree.parse(str(PLATEAU)).iter("{*}posList")).text.split()
    v = np.array(ring, dtype=float).reshape(-1, 3)  # latitude, longitude, height
    lon, lat, _ = _best("EPSG:6697").transform(v[:, 1], v[:, 0], np.zeros(len(v)))
    expected = np.column_stack((lon, lat, v[:, 2] + geoid_heights(lon, lat)))
    stored = _stored(db, "tokyo")
    assert _metres_apart(expected, stored).max() < TOLERANCE_M
    nearest = [int(np.argmin(np.abs(stored - p).sum(axis=1))) for p in expected]
    assert np.abs(stored[nearest, 2] - expected[:, 2]).max() < 0.01
    assert 139.7 < lon.mean() < 139.73 and 30 < expected[:, 2].min() - v[:, 2].min() < 45


def test_nap_heights_land_within_2_m_of_the_dutch_geoid(db: Engine, tmp_path: Path) -> None:
    """The RDNAPTRANS test points as a CityJSON file in RD New + NAP, ingested: the stored
    heights against the ETRS89 heights RDNAP publishes for them."""
    doc = {
        "type": "CityJSON",
        "version": "2.0",
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/7415"},
        "transform": {"scale": [0.0001] * 3, "translate": [0.0, 0.0, 0.0]},
        "CityObjects": {
            name: {
                "type": "GenericCityObject",
                "geometry": [{"type": "MultiPoint", "lod": "0", "boundaries": [k]}],
            }
            for k, (name, *_) in enumerate(RDNAPTRANS)
        },
        "vertices": [[round(p[1] * 1e4), round(p[2] * 1e4), round(p[3] * 1e4)] for p in RDNAPTRANS],
    }
    path = tmp_path / "rdnaptrans.city.json"
    path.write_text(json.dumps(doc))
    [report] = ingest_files(db, [path], "nl")
    assert report.transformation["heights"]["method"] == "global EGM96 geoid"
    with db.connect() as conn:
        rows: dict[str, float] = dict(
            conn.execute(
                text(
                    "SELECT o.source_id, ST_Z(ST_GeometryN(g.geom, 1)) FROM object_geometry g"
                    " JOIN city_object o ON o.city_code = g.city_code AND o.id = g.object_id"
                    " WHERE o.city_code = 'nl'"
                )
            ).all()
        )
    errors = [abs(rows[name] - h) for name, *_, h in RDNAPTRANS]
    assert max(errors) < NATIONAL_TOLERANCE_M  # measured: 0.34 m (Zuid-Limburg)


def test_a_file_without_vertical_datum_says_what_was_assumed(db: Engine) -> None:
    [report] = ingest_files(db, [LYON], "lyon", crs="EPSG:3946")
    heights = report.transformation["heights"]
    assert heights["method"] == "assumed ellipsoidal"
    assert any("declares no vertical datum" in w and "too low" in w for w in report.warnings)


# ---------------------------------------------------------------- 4. the ballpark, reported
def test_cgcs2000_ballpark_is_in_the_report(db: Engine) -> None:
    [report] = ingest_files(db, [SHANGHAI], "shanghai")
    horizontal = report.transformation["horizontal"]
    assert report.source_crs == "EPSG:4490"
    assert horizontal["ballpark"] is True
    assert "CGCS2000" in horizontal["note"] and "few centimetres" in horizontal["note"]
    assert crs_label(CRS("EPSG:4490")) == report.source_crs


def test_other_spellings_of_the_files_crs_are_not_reported(db: Engine, tmp_path: Path) -> None:
    """The envelope says EPSG version 6.12, the geometries no version: one CRS, no warning."""
    body = _berlin_in_gk4(COMPOUND_GK4)
    first = body.index(f'srsName="{COMPOUND_GK4}"')
    versioned = "urn:ogc:def:crs,crs:EPSG:6.12:31468,crs:EPSG:6.12:5783"
    body = body[:first] + f'srsName="{versioned}"' + body[first + len(COMPOUND_GK4) + 10 :]
    assert body.count(COMPOUND_GK4) >= 1 and body.count(versioned) == 1
    report = _ingest_text(db, tmp_path, body, "gk4-spellings")
    assert not any("declare srsName" in w for w in report.warnings)  # type: ignore[attr-defined]
    _assert_berlin(db, "gk4-spellings")
    # a different CRS on a geometry is still said
    other = body.replace(COMPOUND_GK4, "urn:ogc:def:crs,crs:EPSG::31467,crs:EPSG::5783")
    report = _ingest_text(db, tmp_path, other, "gk4-other")
    assert any("declare srsName" in w for w in report.warnings)  # type: ignore[attr-defined]
