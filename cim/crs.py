"""Coordinate reference systems: parsing the forms city files use, and the one place axis order
is decided.

Storage CRS is EPSG:4979 (WGS 84 longitude, latitude, ellipsoidal height), written x=lon, y=lat as
PostGIS does; Earth-centred EPSG:4978 is derived from it for 3D Tiles. Every pyproj transformer in
the project is built here with `always_xy=True`, so callers always pass easting/longitude first,
whatever axis order the CRS definition declares (EPSG:4490 and EPSG:6697 declare latitude first).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from pyproj.transformer import TransformerGroup

from cim.errors import InvalidCRS

STORAGE_EPSG = 4979
FOOTPRINT_EPSG = 4326
ECEF_EPSG = 4978

_EPSG_URL = re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/[^/]*/(\d+)/?$", re.IGNORECASE)
_OGC_URL = re.compile(r"^https?://www\.opengis\.net/def/crs/OGC/[^/]*/(CRS84h?)/?$", re.IGNORECASE)
_EPSG_URN = re.compile(r"^urn:ogc:def:crs:EPSG:[^:]*:(\d+)$", re.IGNORECASE)
_OGC_URN = re.compile(r"^urn:ogc:def:crs:OGC:[^:]*:(CRS84h?)$", re.IGNORECASE)
_COMPOUND_URN = re.compile(r"^urn:ogc:def:crs,(.+)$", re.IGNORECASE)
_COMPOUND_URL = re.compile(r"^https?://www\.opengis\.net/def/crs-compound\?(.+)$", re.IGNORECASE)
_EPSG_SHORT = re.compile(r"^(?:EPSG:)?(\d+)$", re.IGNORECASE)
_ADV_URN = re.compile(r"^urn:adv:crs:([A-Za-z0-9_]+)(?:\*([A-Za-z0-9_]+))?$", re.IGNORECASE)
# German surveying (AdV) CRS names used by CityGML files of German states, as EPSG codes
ADV_CODES = {
    "ETRS89_UTM32": 25832,
    "ETRS89_UTM33": 25833,
    "DE_DHDN_3GK2": 31466,
    "DE_DHDN_3GK3": 31467,
    "DE_DHDN_3GK4": 31468,
    "DE_DHDN_3GK5": 31469,
    "DE_DHHN92_NH": 5783,
    "DE_DHHN2016_NH": 7837,
}
_OGC_SHORT = re.compile(r"^OGC:(CRS84h?)$", re.IGNORECASE)


def _component_code(text: str) -> str:
    """One component of a compound CRS name (`crs:EPSG::5783` or an EPSG URL) as `EPSG:n`."""
    text = text.strip()
    m = re.match(r"^crs:EPSG:[^:]*:(\d+)$", text, re.IGNORECASE) or _EPSG_URL.match(text)
    if not m:
        raise InvalidCRS(f"unsupported component {text!r} in a compound CRS")
    return f"EPSG:{m.group(1)}"


def normalise_crs_name(name: str) -> str:
    """Turn a CRS name as files write it (URL, URN, compound, `EPSG:n`) into pyproj input.

    Raises:
        InvalidCRS: the form is not one CIM understands.
    """
    text = name.strip()
    if m := (_EPSG_URL.match(text) or _EPSG_URN.match(text) or _EPSG_SHORT.match(text)):
        return f"EPSG:{m.group(1)}"
    if m := (_OGC_URL.match(text) or _OGC_URN.match(text) or _OGC_SHORT.match(text)):
        return "OGC:CRS84h" if m.group(1).lower() == "crs84h" else "OGC:CRS84"
    if m := _ADV_URN.match(text):
        names = [n for n in m.groups() if n]
        unknown = [n for n in names if n.upper() not in ADV_CODES]
        if unknown:
            raise InvalidCRS(
                f"unknown AdV CRS name {unknown[0]!r} in {name!r}; pass the EPSG code with --crs"
            )
        return "+".join(f"EPSG:{ADV_CODES[n.upper()]}" for n in names)
    if m := _COMPOUND_URN.match(text):
        return "+".join(_component_code(p) for p in m.group(1).split(","))
    if m := _COMPOUND_URL.match(text):
        parts = [p.split("=", 1)[1] for p in m.group(1).split("&") if "=" in p]
        codes = [_component_code(p) for p in parts]
        if len(codes) != 2:
            raise InvalidCRS(f"a compound CRS needs two components, got {name!r}")
        return "+".join(codes)
    if re.match(r"^(PROJCS|GEOGCS|COMPD_CS|PROJCRS|GEOGCRS|COMPOUNDCRS|BOUNDCRS)\[", text) or (
        text.startswith("{")
    ):
        return text  # WKT or PROJJSON, as GDAL gives a CRS without an EPSG code
    raise InvalidCRS(
        f"unrecognised CRS {name!r}; use a form like EPSG:4548, "
        "https://www.opengis.net/def/crs/EPSG/0/4548 or urn:ogc:def:crs:EPSG::4548"
    )


@lru_cache(maxsize=256)
def parse_crs(name: str) -> CRS:
    """A pyproj CRS for a name in any supported form.

    Raises:
        InvalidCRS: unknown form or unknown code.
    """
    text = normalise_crs_name(name)
    try:
        if "+" in text:
            a, b = text.split("+", 1)
            return CRS.from_user_input(f"{a}+{b.split(':', 1)[1]}")
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise InvalidCRS(f"unknown CRS {name!r}: {exc}") from None


def crs_label(crs: CRS) -> str:
    """A short stable label (`EPSG:7415`, `EPSG:25832+5783`) for reports and the database."""
    code = crs.to_epsg(min_confidence=90)
    if code:
        return f"EPSG:{code}"
    if crs.is_compound and len(crs.sub_crs_list) == 2:
        codes = [c.to_epsg(min_confidence=90) for c in crs.sub_crs_list]
        if all(codes):
            return f"EPSG:{codes[0]}+{codes[1]}"
    auth = crs.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else crs.name


def lat_first(crs: CRS) -> bool:
    """Whether the CRS definition puts latitude (northing) first, like EPSG:4326 and EPSG:6697."""
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return first in ("north", "south")


def gml_axes_swapped(name: str, crs: CRS) -> bool:
    """Whether GML coordinates written in CRS `name` come latitude/northing first: GML follows the
    CRS definition's axis order, except the AdV names, which are defined easting first."""
    return lat_first(crs) and not name.strip().lower().startswith("urn:adv:")


@dataclass
class ToStorage:
    """Transforms source coordinates to EPSG:4979 and EPSG:4978: easting/longitude first, or in
    the CRS definition's own axis order when `swap_xy` says the file follows it (GML does).

    `swap_xy=None` decides from the data, on the first coordinates seen: the CRS declares
    northing (latitude) first, but many files write easting first anyway; the order whose
    positions fall in the CRS's area of use wins, the declared one on a tie, and a warning says
    when the file's order differs from the declared one."""

    source: CRS
    warnings: list[str] = field(default_factory=list)
    swap_xy: bool | None = False
    _transformer: Transformer | None = None

    def __post_init__(self) -> None:
        if len(self.source.axis_info) < 2:
            raise InvalidCRS(f"CRS {self.source.name!r} is not horizontal")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            group = TransformerGroup(self.source, STORAGE_EPSG, always_xy=True)
        if not group.transformers:
            raise InvalidCRS(f"no transformation from {self.source.name} to WGS 84 is available")
        chosen = _most_accurate(group.transformers)
        if "ballpark vertical" in chosen.description.lower():
            missing = sorted(
                {
                    g.short_name
                    for op in group.unavailable_operations
                    for g in op.grids
                    if not g.available
                }
            )
            self.warnings.append(
                f"heights of {crs_label(self.source)} are orthometric and the geoid model "
                f"({', '.join(missing) or 'a grid'}) is not installed: heights were kept as they "
                "are, not converted to ellipsoidal (objects may float or sink by the geoid height)"
            )
        elif not self._has_vertical():
            self.warnings.append(
                f"{crs_label(self.source)} has no vertical datum; heights taken as ellipsoidal"
            )
        self._transformer = chosen

    def _declared_order_fits(self, sample: NDArray[np.float64]) -> bool:
        """Whether coordinates in the CRS's declared (northing-first) order land in its area of
        use at least as well as easting-first ones; warns when the file is easting first."""
        assert self._transformer is not None
        area = self.source.area_of_use
        if area is None or not len(sample):
            return True
        t = self._transformer
        declared = _inside(t.transform(sample[:, 1], sample[:, 0], errcheck=False), area)
        plain = _inside(t.transform(sample[:, 0], sample[:, 1], errcheck=False), area)
        if plain > declared:
            self.warnings.append(
                f"{crs_label(self.source)} declares northing (latitude) first, but the file's "
                "coordinates are easting (longitude) first: they were read that way, the only "
                "one that puts them inside the CRS's area of use"
            )
            return False
        if plain == declared:
            self.warnings.append(
                f"both axis orders put the coordinates inside the area of use of "
                f"{crs_label(self.source)}: they were read northing (latitude) first, as the CRS "
                "declares; if the objects land in the wrong place, ingest again with "
                "--axis-order east-first"
            )
        return True

    def _has_vertical(self) -> bool:
        return len(self.source.axis_info) >= 3

    def to_lonlath(self, xyz: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, 3) source coordinates to (n, 3) longitude, latitude, ellipsoidal height."""
        assert self._transformer is not None
        if self.swap_xy is None:
            self.swap_xy = self._declared_order_fits(xyz[:1000])
        a, b = (1, 0) if self.swap_xy else (0, 1)
        x, y, z = self._transformer.transform(xyz[:, a], xyz[:, b], xyz[:, 2], errcheck=False)
        return np.column_stack((x, y, z))


def _inside(lonlat: tuple[NDArray[np.float64], NDArray[np.float64]], area: object) -> int:
    lon, lat = lonlat
    w, s, e, n = (getattr(area, k) for k in ("west", "south", "east", "north"))
    margin = 1.0  # degrees: areas of use are drawn tight
    lon_ok = (lon >= w - margin) & (lon <= e + margin) if w <= e else (lon >= w) | (lon <= e)
    return int(np.count_nonzero(lon_ok & (lat >= s - margin) & (lat <= n + margin)))


def _most_accurate(candidates: list[Transformer]) -> Transformer:
    """The first candidate that does not guess the horizontal datum shift.

    PROJ lists a "ballpark geographic offset" (no datum shift at all, ~100 m off for
    Amersfoort) ahead of real Helmert transformations when the grid-based best one is missing.
    """
    for t in candidates:
        if "ballpark geographic offset" not in t.description.lower():
            return t
    return candidates[0]


# WGS 84 ellipsoid, for the exact geodetic -> Earth-centred conversion.
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)


def lonlath_to_ecef(llh: NDArray[np.float64]) -> NDArray[np.float64]:
    """(n, 3) longitude, latitude (degrees), ellipsoidal height to EPSG:4978 X, Y, Z in metres."""
    lon = np.radians(llh[:, 0])
    lat = np.radians(llh[:, 1])
    h = llh[:, 2]
    sin_lat = np.sin(lat)
    n = _A / np.sqrt(1 - _E2 * sin_lat * sin_lat)
    cos_lat = np.cos(lat)
    return np.column_stack(
        (
            (n + h) * cos_lat * np.cos(lon),
            (n + h) * cos_lat * np.sin(lon),
            (n * (1 - _E2) + h) * sin_lat,
        )
    )


OGC_CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
OGC_CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"


@dataclass(frozen=True)
class OutputCrs:
    """A CRS that the Features API can answer in: its OGC URI, PostGIS SRID and axis order."""

    uri: str
    srid: int
    lat_first: bool

    @staticmethod
    def from_uri(uri: str) -> OutputCrs:
        """Parse an OGC CRS URI (or `EPSG:n`).

        Raises:
            InvalidCRS: unknown or unsupported.
        """
        name = normalise_crs_name(uri)
        if name == "OGC:CRS84":
            return OutputCrs(OGC_CRS84, STORAGE_EPSG, False)
        if name == "OGC:CRS84h":
            return OutputCrs(OGC_CRS84H, STORAGE_EPSG, False)
        if "+" in name:
            raise InvalidCRS(f"compound CRS {uri!r} is not offered by the API")
        code = int(name.split(":")[1])
        return OutputCrs(
            f"http://www.opengis.net/def/crs/EPSG/0/{code}", code, lat_first(parse_crs(name))
        )
