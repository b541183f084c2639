"""The CRS of a CityGML document: the srsName it declares first, and the geometries that declare
another (they are read as the file's, and counted so that the ingest can say so)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any


def first_srs_name(text: str) -> str | None:
    """The first srsName in a document's text: the CRS all its coordinates are read in."""
    names = re.findall(r"""srsName\s*=\s*["']([^"']+)["']""", text)
    return names[0] if names else None


class SrsNames:
    """The srsNames of a document's geometries that differ from the file's, counted by name."""

    def __init__(self, crs_name: str | None) -> None:
        self.crs_name = crs_name
        self.other: Counter[str] = Counter()

    def check(self, el: Any) -> None:
        """Count the srsNames under `el` that are not the file's."""
        for e in el.iter():
            name = e.get("srsName")
            if name and name != self.crs_name:
                self.other[name] += 1

    def warnings(self) -> list[str]:
        """One warning per other srsName seen."""
        return [
            f"{n} geometries declare srsName {name!r}, not the file's {self.crs_name!r}; "
            "they were read as the file's"
            for name, n in self.other.items()
        ]
