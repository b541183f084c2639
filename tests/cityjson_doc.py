"""A small CityJSON 2.0 document in CGCS2000 / 3-degree Gauss-Kruger CM 117E (EPSG:4548), as the
tests that build their own cities write it: integer vertices in millimetres from (e0, n0)."""

from __future__ import annotations

from typing import Any


def cgcs2000_city(
    objects: dict[str, Any], vertices: list[list[int]], e0: float, n0: float
) -> dict[str, Any]:
    """The document of these city objects and vertices."""
    return {
        "type": "CityJSON",
        "version": "2.0",
        "transform": {"scale": [0.001, 0.001, 0.001], "translate": [e0, n0, 0.0]},
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4548"},
        "CityObjects": objects,
        "vertices": vertices,
    }
