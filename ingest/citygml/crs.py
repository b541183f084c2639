"""The CRS of a CityGML document: the srsName it declares first, and the geometries that declare
another (they are read as the file's, and counted so that the ingest can say so)."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

from cim.crs import normalise_crs_name
from cim.errors import InvalidCRS


def first_srs_name(text: str) -> str | None:
    """The first srsName in a document's text: the CRS all its coordinates are read in."""
    names = re.findall(r"""srsName\s*=\s*["']([^"']+)["']""", text)
    return names[0] if names else None


@lru_cache(maxsize=64)
def _same_crs(a: str, b: str) -> bool:
    """Whether two srsNames name one CRS with one axis order (`urn:ogc:def:crs:EPSG:6.12:25833`
    and `urn:ogc:def:crs:EPSG::25833`; an AdV name, easting first, is not its EPSG codes)."""
    adv = a.strip().lower().startswith("urn:adv:"), b.strip().lower().startswith("urn:adv:")
    try:
        return adv[0] == adv[1] and normalise_crs_name(a) == normalise_crs_name(b)
    except InvalidCRS:
        return False


class SrsNames:
    """The srsNames of a document's geometries that differ from the file's, counted by name."""

    def __init__(self, crs_name: str | None) -> None:
        self.crs_name = crs_name
        self.other: Counter[str] = Counter()

    def check(self, el: Any) -> None:
        """Count the srsNames under `el` that are not the file's."""
        for e in el.iter():
            name = e.get("srsName")
            if name and name != self.crs_name and not _same_crs(name, self.crs_name or ""):
                self.other[name] += 1

    def warnings(self) -> list[str]:
        """One warning per other srsName seen."""
        return [
            f"{n} geometries declare srsName {name!r}, not the file's {self.crs_name!r}; "
            "they were read as the file's"
            for name, n in self.other.items()
        ]
