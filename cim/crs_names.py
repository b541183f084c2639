"""CRS names as city files write them: EPSG codes, OGC URLs and URNs, compound forms (including
`EPSG:31468+5783`, the form CIM reports), WKT, and the AdV names of German state surveys."""

from __future__ import annotations

import re
from functools import lru_cache

from pyproj import CRS
from pyproj.exceptions import CRSError

from cim.errors import InvalidCRS

_EPSG_URL = re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/[^/]*/(\d+)/?$", re.IGNORECASE)
_OGC_URL = re.compile(r"^https?://www\.opengis\.net/def/crs/OGC/[^/]*/(CRS84h?)/?$", re.IGNORECASE)
_EPSG_URN = re.compile(r"^urn:ogc:def:crs:EPSG:[^:]*:(\d+)$", re.IGNORECASE)
_OGC_URN = re.compile(r"^urn:ogc:def:crs:OGC:[^:]*:(CRS84h?)$", re.IGNORECASE)
_COMPOUND_URN = re.compile(r"^urn:ogc:def:crs,(.+)$", re.IGNORECASE)
_COMPOUND_URL = re.compile(r"^https?://www\.opengis\.net/def/crs-compound\?(.+)$", re.IGNORECASE)
_EPSG_SHORT = re.compile(r"^(?:EPSG:)?(\d+)$", re.IGNORECASE)
# `EPSG:31468+5783`, the form reports and `source_crs` use, and `EPSG:31468+EPSG:5783`
_EPSG_PLUS = re.compile(r"^(?:EPSG:)?(\d+)\s*\+\s*(?:EPSG:)?(\d+)$", re.IGNORECASE)
_ADV_URN = re.compile(r"^urn:adv:crs:([^*\s]+)((?:\*[^*\s]+)*)$", re.IGNORECASE)
# CRS names of the German surveying authorities (AdV, GeoInfoDok) as CityGML files of German
# states write them, `urn:adv:crs:HORIZONTAL[*VERTICAL[*QUASIGEOID]]`, with their EPSG codes.
# The AdV projected CRSs are defined easting first (EPSG's Gauss-Kruger ones northing first).
ADV_HORIZONTAL = {
    "ETRS89_UTM31": 25831,
    "ETRS89_UTM32": 25832,
    "ETRS89_UTM33": 25833,
    "ETRS89_LAT-LON": 4258,
    "DE_DHDN_3GK2": 31466,
    "DE_DHDN_3GK3": 31467,
    "DE_DHDN_3GK4": 31468,
    "DE_DHDN_3GK5": 31469,
    "DE_42-83_3GK3": 2397,
    "DE_42-83_3GK4": 2398,
    "DE_42-83_3GK5": 2399,
    "DE_PD-83_3GK3": 3396,
    "DE_PD-83_3GK4": 3397,
    "DE_RD-83_3GK4": 3398,
    "DE_RD-83_3GK5": 3399,
}
ADV_VERTICAL = {
    "DE_DHHN2016_NH": 7837,
    "DE_DHHN92_NH": 5783,
    "DE_DHN92_NH": 5783,  # as Bavaria's LDBV files (and 3DCityDB's examples) spell DHHN92
    "DE_DHHN12_NOH": 7699,
    "DE_DHHN85_NOH": 5784,
    "DE_SNN76_NH": 5785,
}
# a third part names the quasigeoid of the height system; the vertical datum already implies it
ADV_GEOIDS = {"GCG2016", "GCG2011", "GCG2005"}
ADV_CODES = {**ADV_HORIZONTAL, **ADV_VERTICAL}
_OGC_SHORT = re.compile(r"^OGC:(CRS84h?)$", re.IGNORECASE)


def _component_code(text: str) -> str:
    """One component of a compound CRS name (`crs:EPSG::5783` or an EPSG URL) as `EPSG:n`."""
    text = text.strip()
    m = re.match(r"^crs:EPSG:[^:]*:(\d+)$", text, re.IGNORECASE) or _EPSG_URL.match(text)
    if not m:
        raise InvalidCRS(f"unsupported component {text!r} in a compound CRS")
    return f"EPSG:{m.group(1)}"


def _adv_codes(name: str, parts: list[str]) -> str:
    """The EPSG form of an AdV name's parts: horizontal, then vertical, then a quasigeoid."""
    keys = [p.upper().replace("/", "-") for p in parts]
    if keys and keys[-1] in ADV_GEOIDS and len(keys) == 3:
        keys = keys[:2]
    tables = [ADV_CODES] if len(keys) == 1 else [ADV_HORIZONTAL, ADV_VERTICAL]
    if len(keys) > len(tables):
        raise InvalidCRS(f"an AdV CRS name has at most three parts, got {name!r}")
    for key, part, table in zip(keys, parts, tables, strict=False):
        if key not in table:
            known = ", ".join(sorted(table))
            raise InvalidCRS(
                f"unknown AdV CRS name {part!r} in {name!r} (known: {known}); pass the EPSG "
                "code with --crs, e.g. --crs EPSG:31468+5783"
            )
    return "+".join(f"EPSG:{ADV_CODES[k]}" for k in keys)


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
    if m := _EPSG_PLUS.match(text):
        return f"EPSG:{m.group(1)}+EPSG:{m.group(2)}"
    if m := _ADV_URN.match(text):
        return _adv_codes(name, [m.group(1), *m.group(2).split("*")[1:]])
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
