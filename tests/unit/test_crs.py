"""CRS names in every form files use, axis order, and the choice of transformation."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from cim.crs import OutputCrs, ToStorage, crs_label, lonlath_to_ecef, normalise_crs_name, parse_crs
from cim.errors import InvalidCRS


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
    """Without the Dutch grids PROJ lists a 'ballpark' zero datum shift first; CIM skips it."""
    to = ToStorage(parse_crs("EPSG:7415"))
    lon, lat, h = to.to_lonlath(np.array([[155000.0, 463000.0, 10.0]]))[0]
    ref_lon, ref_lat = Transformer.from_crs(28992, 4326, always_xy=True).transform(155000, 463000)
    assert (lon, lat) == pytest.approx((ref_lon, ref_lat), abs=1e-7)
    assert h == 10.0
    assert any("geoid" in w for w in to.warnings)


def test_ecef_matches_pyproj() -> None:
    llh = np.array([[117.02, 36.66, 30.0], [4.37, 52.0, -2.0], [-70.0, -33.4, 600.0]])
    x, y, z = Transformer.from_crs(4979, 4978, always_xy=True).transform(*llh.T)
    assert np.abs(lonlath_to_ecef(llh) - np.column_stack((x, y, z))).max() < 1e-6
