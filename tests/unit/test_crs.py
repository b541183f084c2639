"""CRS names in every form files use, axis order, and the choice of transformation."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from cim.crs import OutputCrs, ToStorage, crs_label, lonlath_to_ecef, normalise_crs_name, parse_crs
from cim.errors import InvalidCRS
from cim.heights import geoid_heights


@pytest.mark.parametrize(
    "name,expected",
    [
        ("https://www.opengis.net/def/crs/EPSG/0/7415", "EPSG:7415"),
        ("http://www.opengis.net/def/crs/EPSG/0/4548", "EPSG:4548"),
        ("urn:ogc:def:crs:EPSG::7415", "EPSG:7415"),
        ("urn:ogc:def:crs:EPSG:6.12:25833", "EPSG:25833"),
        ("EPSG:2056", "EPSG:2056"),
        ("epsg:4490", "EPSG:4490"),
        ("urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783", "EPSG:25832+EPSG:5783"),
        ("urn:ogc:def:crs,crs:EPSG:6.12:25833,crs:EPSG:6.12:5783", "EPSG:25833+EPSG:5783"),
        (
            "https://www.opengis.net/def/crs-compound?1=https://www.opengis.net/def/crs/EPSG/0/28992"
            "&2=https://www.opengis.net/def/crs/EPSG/0/5709",
            "EPSG:28992+EPSG:5709",
        ),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84"),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", "OGC:CRS84"),
    ],
)
def test_names_are_normalised(name: str, expected: str) -> None:
    assert normalise_crs_name(name) == expected


@pytest.mark.parametrize(
    "name", ["", "WGS84", "urn:ogc:def:crs:FOO::1", "EPSG:abc", "urn:ogc:def:crs,crs:EPSG::25832"]
)
def test_unknown_forms_are_refused_clearly(name: str) -> None:
    with pytest.raises(InvalidCRS):
        parse_crs(name) if name != "urn:ogc:def:crs,crs:EPSG::25832" else parse_crs(name + ",x")


def test_unknown_code_is_refused() -> None:
    with pytest.raises(InvalidCRS, match="unknown CRS"):
        parse_crs("EPSG:999999")


def test_compound_crs_is_recognised() -> None:
    crs = parse_crs("urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783")
    assert crs.is_compound
    assert crs_label(parse_crs("https://www.opengis.net/def/crs/EPSG/0/7415")) == "EPSG:7415"


def test_latitude_first_crs_is_given_longitude_first() -> None:
    """EPSG:4490 declares latitude first; CIM always passes x = longitude (always_xy)."""
    to = ToStorage(parse_crs("EPSG:4490"))
    llh = to.to_lonlath(np.array([[117.02, 36.66, 50.0]]))
    assert llh[0, 0] == pytest.approx(117.02, abs=1e-6)
    assert llh[0, 1] == pytest.approx(36.66, abs=1e-6)
    assert OutputCrs.from_uri("http://www.opengis.net/def/crs/EPSG/0/4490").lat_first
    assert OutputCrs.from_uri("http://www.opengis.net/def/crs/EPSG/0/4326").lat_first
    assert not OutputCrs.from_uri("http://www.opengis.net/def/crs/EPSG/0/3857").lat_first
    assert not OutputCrs.from_uri("http://www.opengis.net/def/crs/OGC/1.3/CRS84").lat_first
    # Chinese Gauss-Kruger CRSs are northing first in the EPSG definition
    assert OutputCrs.from_uri("http://www.opengis.net/def/crs/EPSG/0/4548").lat_first


def test_no_zero_shift_guess_for_rd_new() -> None:
    """Without the Dutch grids PROJ lists a 'ballpark' zero datum shift first; CIM skips it, and
    converts the NAP heights with EGM96 (the Dutch geoid is 43 m there)."""
    to = ToStorage(parse_crs("EPSG:7415"))
    lon, lat, h = to.to_lonlath(np.array([[155000.0, 463000.0, 10.0]]))[0]
    ref_lon, ref_lat = Transformer.from_crs(28992, 4326, always_xy=True).transform(155000, 463000)
    assert (lon, lat) == pytest.approx((ref_lon, ref_lat), abs=1e-7)
    assert h == pytest.approx(10.0 + float(geoid_heights(np.array([lon]), np.array([lat]))[0]))
    assert not to.horizontal.ballpark
    assert any("geoid" in w for w in to.warnings)


def test_ecef_matches_pyproj() -> None:
    llh = np.array([[117.02, 36.66, 30.0], [4.37, 52.0, -2.0], [-70.0, -33.4, 600.0]])
    x, y, z = Transformer.from_crs(4979, 4978, always_xy=True).transform(*llh.T)
    assert np.abs(lonlath_to_ecef(llh) - np.column_stack((x, y, z))).max() < 1e-6


# ------------------------------------------------------------- compound names and axis order
MUNICH_GK4 = (4468000.0, 5333000.0)  # DHDN / 3-degree Gauss-Kruger zone 4, easting first
COMPOUND_GK4 = "urn:ogc:def:crs,crs:EPSG::31468,crs:EPSG::5783"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("EPSG:31468+5783", "EPSG:31468+EPSG:5783"),
        ("epsg:31468+epsg:5783", "EPSG:31468+EPSG:5783"),
        ("31468 + 5783", "EPSG:31468+EPSG:5783"),
        ("urn:adv:crs:DE_DHDN_3GK4*DE_DHN92_NH", "EPSG:31468+EPSG:5783"),
        ("urn:adv:crs:DE_DHDN_3GK4*DE_DHHN92_NH", "EPSG:31468+EPSG:5783"),
        ("urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH", "EPSG:25832+EPSG:7837"),
        ("urn:adv:crs:ETRS89_UTM33*DE_DHHN2016_NH*GCG2016", "EPSG:25833+EPSG:7837"),
        ("urn:adv:crs:ETRS89_UTM33*DE_DHHN92_NH", "EPSG:25833+EPSG:5783"),
        ("urn:adv:crs:DE_DHDN_3GK3*DE_DHN92_NH", "EPSG:31467+EPSG:5783"),
        ("urn:adv:crs:DE_42/83_3GK4*DE_SNN76_NH", "EPSG:2398+EPSG:5785"),
        ("urn:adv:crs:ETRS89_UTM32", "EPSG:25832"),
    ],
)
def test_compound_and_adv_names(name: str, expected: str) -> None:
    assert normalise_crs_name(name) == expected
    assert parse_crs(name).is_compound == ("+" in expected)


def test_the_label_cim_prints_is_accepted_back() -> None:
    """`source_crs` says EPSG:31468+5783; the same text given to --crs is the same CRS."""
    crs = parse_crs(COMPOUND_GK4)
    label = crs_label(crs)
    assert label == "EPSG:31468+5783"
    assert parse_crs(label) == crs
    assert crs_label(parse_crs("urn:adv:crs:DE_DHDN_3GK4*DE_DHN92_NH")) == label


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("urn:adv:crs:DE_DHDN_3GK4*DE_DHHN93_NH", "DE_DHHN93_NH"),
        ("urn:adv:crs:DE_DHDN_3GK9*DE_DHN92_NH", "DE_DHDN_3GK9"),
        ("urn:adv:crs:DE_DHN92_NH*DE_DHDN_3GK4", "DE_DHN92_NH"),  # vertical first
        ("urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH*GCG2016*X", "at most three parts"),
    ],
)
def test_unknown_adv_names_are_refused_naming_the_part(name: str, words: str) -> None:
    with pytest.raises(InvalidCRS, match=words.replace("*", r"\*")):
        parse_crs(name)


def test_axis_order_of_a_compound_name_comes_from_its_horizontal_part() -> None:
    """The compound CRS has no area of use of its own; EPSG:31468's decides. The file writes
    easting first (as Bavarian files do): read as declared (northing first) the building would
    land in Greece, 1,477 km away."""
    to = ToStorage(parse_crs(COMPOUND_GK4), swap_xy=None)
    lon, lat, _ = to.to_lonlath(np.array([[*MUNICH_GK4, 520.0]]))[0]
    ref = Transformer.from_crs("EPSG:31468", "EPSG:4326", always_xy=True)
    assert (lon, lat) == pytest.approx(ref.transform(*MUNICH_GK4), abs=1e-9)
    assert 11 < lon < 12 and 48 < lat < 48.5  # Munich
    greece = ref.transform(MUNICH_GK4[1], MUNICH_GK4[0])  # the order the CRS declares
    assert 21 < greece[0] < 22 and 39.5 < greece[1] < 40.5
    assert to.swap_xy is False
    assert any("easting (longitude) first" in w for w in to.warnings)


def test_coordinates_outside_the_area_in_every_order_are_refused() -> None:
    """UTM zone 33 coordinates of Berlin labelled as Gauss-Kruger zone 4: nowhere near it."""
    for swap in (None, False, True):
        to = ToStorage(parse_crs(COMPOUND_GK4), swap_xy=swap)
        with pytest.raises(InvalidCRS, match="outside the area of use of EPSG:31468"):
            to.to_lonlath(np.array([[388662.28, 5818806.80, 33.05]]))


# ------------------------------------------------------------------------------- heights
# EGM96 geoid heights published by NGA with EGM96 (its test file of interpolated points)
NGA_EGM96 = [
    (38.6281550, 269.7791550, -31.628),
    (-14.6212170, 305.0211140, -2.969),
    (46.8743190, 102.4487290, -43.575),
    (-23.6174460, 133.8747120, 15.871),
    (38.6254730, 359.9995000, 50.066),
    (-0.4667440, 0.0023000, 17.329),
]
# RDNAPTRANS(TM)2008 test points published by RDNAP (Kadaster, Rijkswaterstaat), as repeated in
# PDOK/rdnaptrans-java and reinvantveer/rdnaptrans.js: RD x, y, NAP height -> ETRS89 latitude,
# longitude and ellipsoidal height, i.e. the Dutch national geoid's answer
RDNAPTRANS = [
    ("Texel", 117380.12, 575040.34, 1.0, 53.160753042, 4.824761912, 42.8614),
    ("Noord-Groningen", 247380.56, 604580.78, 2.0, 53.419482050, 6.776726674, 42.3586),
    ("Amersfoort", 155000.0, 463000.0, 0.0, 52.155172897, 5.387203657, 43.2551),
    ("Amersfoort 100m", 155000.0, 463000.0, 100.0, 52.155172910, 5.387203658, 143.2551),
    ("Zeeuws-Vlaanderen", 16460.91, 377380.23, 3.0, 51.368607152, 3.397588595, 47.4024),
    ("Zuid-Limburg", 182260.45, 311480.67, 200.0, 50.792584916, 5.773795548, 245.9478),
    ("Maasvlakte", 64640.89, 440700.0101, 4.0, 51.947393898, 4.072887101, 47.5968),
]
# GSIGEO2011 (Japan's geoid, GSI) heights at two points, as tested in MapIV/llh_converter
GSIGEO2011 = [(36.104394, 140.085365, 40.1954), (35.160410, 139.615526, 36.6453)]
NATIONAL_TOLERANCE_M = 2.0


def test_egm96_is_installed_and_matches_ngas_published_values() -> None:
    lat = np.array([p[0] for p in NGA_EGM96])
    lon = np.array([(p[1] + 180) % 360 - 180 for p in NGA_EGM96])
    expected = np.array([p[2] for p in NGA_EGM96])
    # the 15' grid, interpolated, against NGA's values from the full model: a few centimetres
    assert np.abs(geoid_heights(lon, lat) - expected).max() < 0.1


def test_nap_heights_without_the_dutch_grid_are_within_2_m_of_rdnaptrans() -> None:
    to = ToStorage(parse_crs("EPSG:7415"))
    llh = to.to_lonlath(np.array([[p[1], p[2], p[3]] for p in RDNAPTRANS]))
    published = np.array([[p[5], p[4], p[6]] for p in RDNAPTRANS])
    assert np.abs(llh[:, 2] - published[:, 2]).max() < NATIONAL_TOLERANCE_M  # measured: 0.34 m
    # and in place: RD -> WGS 84 by PROJ's Helmert is within decimetres of ETRS89 there
    metres = np.abs(llh[:, :2] - published[:, :2]) * [111_320 * np.cos(np.radians(52)), 111_320]
    assert metres.max() < 0.5
    assert to.heights.method == "global EGM96 geoid"
    assert to.heights.accuracy_m == NATIONAL_TOLERANCE_M
    assert "nl_nsgi_nlgeo2018.tif" in to.heights.note


def test_jgd2011_heights_without_the_japanese_grid_are_within_2_m_of_gsigeo2011() -> None:
    to = ToStorage(parse_crs("EPSG:6697"), swap_xy=True)  # latitude first, as declared
    llh = to.to_lonlath(np.array([[lat, lon, 25.0] for lat, lon, _ in GSIGEO2011]))
    expected = np.array([25.0 + n for _, _, n in GSIGEO2011])
    assert np.abs(llh[:, 2] - expected).max() < NATIONAL_TOLERANCE_M  # measured: 1.36 m
    assert to.heights.method == "global EGM96 geoid"


def test_the_vertical_datums_own_grid_is_used_when_present() -> None:
    """EGM96 heights (EPSG:9707): PROJ has the grid of that datum, and CIM leaves it to PROJ."""
    to = ToStorage(parse_crs("EPSG:9707"), swap_xy=True)
    lon, lat, h = to.to_lonlath(np.array([[52.0, 5.0, 0.0]]))[0]
    assert h == pytest.approx(float(geoid_heights(np.array([5.0]), np.array([52.0]))[0]))
    assert to.heights.method == "national grid"
    assert to.heights.model == "egm96_15.gtx"
    assert not any("geoid" in w for w in to.warnings)


def test_ellipsoidal_heights_need_no_geoid() -> None:
    to = ToStorage(parse_crs("EPSG:4937"), swap_xy=True)  # ETRS89 3D
    assert to.to_lonlath(np.array([[52.0, 5.0, 45.0]]))[0, 2] == pytest.approx(45.0, abs=1e-6)
    assert to.heights.method == "none needed"
    assert to.warnings == []


def test_a_file_without_vertical_datum_says_what_was_assumed() -> None:
    to = ToStorage(parse_crs("EPSG:3946"))
    llh = to.to_lonlath(np.array([[1842000.0, 5176000.0, 170.0]]))
    assert llh[0, 2] == 170.0
    n = float(geoid_heights(llh[:, 0], llh[:, 1])[0])
    assert 45 < n < 55  # Lyon
    assert to.heights.method == "assumed ellipsoidal"
    [warning] = to.warnings
    assert f"sit {n:.1f} m too low" in warning and "--crs EPSG:3946+5773" in warning


# ------------------------------------------------------------------- the ballpark, said
@pytest.mark.parametrize("name", ["EPSG:4490", "EPSG:4547", "EPSG:4490+5737"])
def test_cgcs2000_to_wgs84_is_the_ballpark_and_the_report_says_why(name: str) -> None:
    """PROJ has no CGCS2000 -> WGS 84 transformation but its zero shift; both are ITRF-aligned,
    so it is a centimetre matter at one epoch: reported, not warned."""
    to = ToStorage(parse_crs(name))
    assert to.horizontal.ballpark
    assert "few centimetres" in to.horizontal.note and "epoch 2000.0" in to.horizontal.note
    assert not any("no datum shift" in w for w in to.warnings)
    assert to.describe()["horizontal"]["ballpark"] is True


def test_china_1985_heights_get_the_egm96_geoid() -> None:
    to = ToStorage(parse_crs("EPSG:4490+5737"), swap_xy=True)
    lon, lat, h = to.to_lonlath(np.array([[36.66, 117.02, 50.0]]))[0]
    assert h == pytest.approx(50.0 + float(geoid_heights(np.array([lon]), np.array([lat]))[0]))
    assert to.heights.method == "global EGM96 geoid"
    assert "PROJ knows no geoid model" in to.heights.note


def test_a_ballpark_for_another_datum_is_a_warning() -> None:
    """Xian 1980 differs from WGS 84 by some 100 m; PROJ knows no shift for it."""
    to = ToStorage(parse_crs("EPSG:4610"))
    assert to.horizontal.ballpark
    assert any("no datum shift" in w and "Xian 1980" in w for w in to.warnings)


def test_the_best_grid_is_reported() -> None:
    """Germany's BETA2007 (in Debian's proj-data) is found and used for DHDN."""
    to = ToStorage(parse_crs("EPSG:31468+5783"))
    assert to.horizontal.grids == ["BETA2007.gsb"]
    assert not to.horizontal.ballpark
