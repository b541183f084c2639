"""PROJ's own answer for where source coordinates belong, for tests to hold CIM's placement to.

PROJ's best transformation to WGS 84 (3D) places them. Where PROJ has no geoid grid for the
heights' vertical datum it keeps those heights as they are (its "ballpark vertical"); CIM then
adds the EGM96 geoid, and the reference does the same with PROJ's own EGM96 operation
(WGS 84 + EGM96 height -> WGS 84), so that the comparison stays PROJ against CIM."""

from __future__ import annotations

import warnings

import numpy as np
from pyproj import CRS, Transformer
from pyproj.transformer import TransformerGroup


def _no_geoid_grid(crs: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = TransformerGroup(CRS(crs), CRS("EPSG:4979"), always_xy=True)
    best = next(
        (t for t in group.transformers if "ballpark geographic" not in t.description.lower()),
        group.transformers[0],  # PROJ knows nothing better (CGCS2000)
    )
    return "ballpark vertical" in best.description.lower()


def proj_placement(crs: str, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(n, 3) longitude, latitude, ellipsoidal height of easting/longitude-first coordinates."""
    lon, lat, h = Transformer.from_crs(crs, "EPSG:4979", always_xy=True).transform(x, y, z)
    if _no_geoid_grid(crs):
        egm96 = Transformer.from_crs("EPSG:9707", "EPSG:4979", always_xy=True)
        h = np.asarray(h) + egm96.transform(lon, lat, np.zeros(len(np.atleast_1d(lon))))[2]
    return np.column_stack((lon, lat, h))
