"""Coordinate reference systems: the one place axis order is decided, and the transformation
of a file's coordinates to storage (names are parsed in `cim.crs_names`, heights handled in
`cim.heights`).

Storage CRS is EPSG:4979 (WGS 84 longitude, latitude, ellipsoidal height), written x=lon, y=lat as
PostGIS does; Earth-centred EPSG:4978 is derived from it for 3D Tiles. Every pyproj transformer in
the project is built here or in `cim.heights` with `always_xy=True`, so callers always pass
easting/longitude first, whatever axis order the CRS definition declares (EPSG:4490 and EPSG:6697
declare latitude first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj._crs import AreaOfUse

from cim.crs_names import ADV_CODES as ADV_CODES
from cim.crs_names import ADV_HORIZONTAL as ADV_HORIZONTAL
from cim.crs_names import ADV_VERTICAL as ADV_VERTICAL
from cim.crs_names import crs_label as crs_label
from cim.crs_names import normalise_crs_name as normalise_crs_name
from cim.crs_names import parse_crs as parse_crs
from cim.errors import CimError, IngestError, InvalidCRS
from cim.heights import (
    ASSUMED_ELLIPSOIDAL,
    GLOBAL_EGM96,
    NOT_CONVERTED,
    HeightHandling,
    egm96,
    geoid_heights,
    grid_file,
    height_handling,
    horizontal_part,
    transformations,
    vertical_operations,
)

STORAGE_EPSG = 4979
FOOTPRINT_EPSG = 4326
ECEF_EPSG = 4978


def lat_first(crs: CRS) -> bool:
    """Whether the CRS definition puts latitude (northing) first, like EPSG:4326 and EPSG:6697."""
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return first in ("north", "south")


def gml_axes_swapped(name: str, crs: CRS) -> bool:
    """Whether GML coordinates written in CRS `name` come latitude/northing first: GML follows the
    CRS definition's axis order, except the AdV names, whose projected CRSs are defined easting
    first (their geographic ones latitude first)."""
    if name.strip().lower().startswith("urn:adv:"):
        return horizontal_part(crs).is_geographic
    return lat_first(crs)


def area_of_use(crs: CRS) -> AreaOfUse | None:
    """Where a CRS may be used: its own area, or its horizontal part's (a compound CRS built
    from two codes, such as EPSG:31468+5783, has none of its own)."""
    return crs.area_of_use or horizontal_part(crs).area_of_use


# the datums whose "ballpark" (no shift) to WGS 84 is harmless: aligned to the ITRF like it
_ITRF_ALIGNED = {"China 2000"}


def _itrf_aligned(crs: CRS) -> bool:
    datum = horizontal_part(crs).datum
    return datum is not None and datum.name in _ITRF_ALIGNED


@dataclass(frozen=True)
class HorizontalHandling:
    """The horizontal transformation of an ingest: PROJ's operation, the grids it used, its
    accuracy in metres (None: PROJ states none), and whether it is PROJ's zero-shift guess."""

    operation: str
    grids: list[str]
    accuracy_m: float | None
    ballpark: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return asdict(self)


def _horizontal_handling(source: CRS, label: str, chosen: Transformer) -> HorizontalHandling:
    """What PROJ's operation does to positions, in words a user can act on."""
    vertical = {id(op) for op in vertical_operations(chosen)}
    ops = [op for op in (chosen.operations or ()) if id(op) not in vertical]
    grids = sorted({grid_file(g) for op in ops for g in op.grids})
    stated = [op.accuracy for op in ops if op.accuracy and op.accuracy > 0]
    accuracy = chosen.accuracy if chosen.accuracy > 0 else (max(stated) if stated else None)
    if accuracy is None:  # a step merged with the heights' ballpark states none: ask in 2D
        flat = transformations(horizontal_part(source), FOOTPRINT_EPSG).transformers
        accuracy = _most_accurate(flat).accuracy if flat else None
        accuracy = accuracy if accuracy and accuracy > 0 else None
    ballpark = "ballpark geographic offset" in chosen.description.lower()
    datum = horizontal_part(source).datum
    name = datum.name if datum else label
    if not ballpark:
        note = f"PROJ: {chosen.description}" + (f" (accuracy {accuracy:g} m)" if accuracy else "")
    elif _itrf_aligned(source):
        note = (
            "PROJ knows no transformation between CGCS2000 and WGS 84 and applies none (its "
            "'ballpark' zero shift). Both are aligned to the ITRF (CGCS2000 to ITRF97 at epoch "
            "2000.0), so at one epoch they agree to a few centimetres; the coordinates are not "
            "moved from epoch 2000.0 to the present (the crust in China moves about 3 cm a year)"
        )
    else:
        note = (
            f"PROJ knows no transformation from {name} to WGS 84: {label} coordinates were "
            "placed with no datum shift at all ('ballpark'), which can be tens to hundreds of "
            "metres wrong; convert the file to a CRS with a known transformation"
        )
    return HorizontalHandling(chosen.description, grids, accuracy, ballpark, note)


@dataclass
class ToStorage:
    """Transforms source coordinates to EPSG:4979 and EPSG:4978: easting/longitude first, or in
    the CRS definition's own axis order when `swap_xy` says the file follows it (GML does).

    The first coordinates seen are checked against the area of use of the CRS (of its
    horizontal part for a compound CRS): a file that lies outside it whichever axis comes first
    is refused. `swap_xy=None` decides the order from them: the CRS declares northing
    (latitude) first, but many files write easting first anyway; the order whose positions fall
    in the area of use wins, the declared one on a tie, and a warning says when the file's order
    differs from the declared one. `where` names the file in errors."""

    source: CRS
    warnings: list[str] = field(default_factory=list)
    swap_xy: bool | None = False
    where: str | None = None
    label: str = field(init=False, default="")
    horizontal: HorizontalHandling = field(init=False)
    heights: HeightHandling = field(init=False)
    _transformer: Transformer = field(init=False)
    _checked: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if len(self.source.axis_info) < 2:
            raise InvalidCRS(f"CRS {self.source.name!r} is not horizontal")
        self.label = crs_label(self.source)
        candidates = transformations(self.source, STORAGE_EPSG)
        if not candidates.transformers:
            raise InvalidCRS(f"no transformation from {self.source.name} to WGS 84 is available")
        chosen = _most_accurate(candidates.transformers)
        self._transformer = chosen
        self.horizontal = _horizontal_handling(self.source, self.label, chosen)
        self.heights = height_handling(self.source, self.label, chosen, candidates)
        if self.horizontal.ballpark and not _itrf_aligned(self.source):
            self.warnings.append(self.horizontal.note)
        if self.heights.method in (GLOBAL_EGM96, NOT_CONVERTED):
            self.warnings.append(self.heights.note)

    def describe(self) -> dict[str, Any]:
        """The transformations used, for the ingest report."""
        return {"horizontal": self.horizontal.to_dict(), "heights": self.heights.to_dict()}

    def _refuse(self, problem: str) -> CimError:
        return IngestError(self.where, problem) if self.where else InvalidCRS(problem)

    def _check(self, sample: NDArray[np.float64]) -> None:
        """Refuse coordinates outside the area of use in either axis order; decide the order
        when it is open; warn when the order read puts them outside and the other would not."""
        area = area_of_use(self.source)
        if area is None or not len(sample):
            if self.swap_xy is None:
                self.swap_xy = True  # nothing to decide on: the CRS's declared order
            return
        t = self._transformer
        plain = _inside(t.transform(sample[:, 0], sample[:, 1], errcheck=False), area)
        swapped = _inside(t.transform(sample[:, 1], sample[:, 0], errcheck=False), area)
        if plain == 0 and swapped == 0:
            x, y = sample[0, 0], sample[0, 1]
            raise self._refuse(
                f"the coordinates lie outside the area of use of {self.label} ({area.name}: "
                f"{area.west:g} to {area.east:g} E, {area.south:g} to {area.north:g} N) "
                f"whichever axis comes first (the first is {x:.3f}, {y:.3f}): the CRS is "
                "wrong; give the right one with --crs"
            )
        if self.swap_xy is None:
            self.swap_xy = self._decide(plain, swapped)
        elif (swapped if self.swap_xy else plain) == 0:
            self.warnings.append(
                f"the coordinates lie outside the area of use of {self.label} as they are "
                "read, and inside it with their first two axes exchanged: check the axis order"
            )

    def _decide(self, plain: int, declared: int) -> bool:
        if plain > declared:
            self.warnings.append(
                f"{self.label} declares northing (latitude) first, but the file's "
                "coordinates are easting (longitude) first: they were read that way, the only "
                "one that puts them inside the CRS's area of use"
            )
            return False
        if plain == declared:
            self.warnings.append(
                f"both axis orders put the coordinates inside the area of use of "
                f"{self.label}: they were read northing (latitude) first, as the CRS "
                "declares; if the objects land in the wrong place, ingest again with "
                "--axis-order east-first"
            )
        return True

    def _say_assumed(self, llh: NDArray[np.float64]) -> None:
        """For heights taken as ellipsoidal, say how far off they are if they are not."""
        if self.heights.method != ASSUMED_ELLIPSOIDAL or egm96() is None:
            return
        ok = np.isfinite(llh).all(axis=1)
        if not ok.any():
            return
        lon, lat = llh[ok][:1, 0], llh[ok][:1, 1]
        n = float(geoid_heights(lon, lat)[0])
        hint = f"--crs {self.label}+5773" if "+" not in self.label else "--crs"
        note = (
            f"{self.heights.note}. If they are heights above sea level, the objects sit "
            f"{abs(n):.1f} m too {'low' if n > 0 else 'high'} (the EGM96 geoid height at the "
            f"first coordinate): give the vertical datum with {hint} (EGM96 heights) or the "
            "code of the national height datum"
        )
        self.heights = replace(self.heights, note=note)
        self.warnings.append(note)

    def to_lonlath(self, xyz: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, 3) source coordinates to (n, 3) longitude, latitude, ellipsoidal height, in
        column-major (Fortran) order: PROJ transforms the three columns where they lie, with no
        copies around it (a tenth of the transformation's time for a point cloud).

        Raises:
            IngestError: (InvalidCRS without `where`) the first coordinates lie outside the
                CRS's area of use in either axis order.
        """
        first = not self._checked
        if first:
            self._check(xyz[:1000])
            self._checked = True
        a, b = (1, 0) if self.swap_xy else (0, 1)
        columns = np.empty((3, len(xyz)), dtype=np.float64)
        for row, k in enumerate((a, b, 2)):
            columns[row] = xyz[:, k]
        x, y, z = columns
        self._transformer.transform(x, y, z, errcheck=False, inplace=True)
        llh = columns.T
        if self.heights.method == GLOBAL_EGM96 and len(llh):
            llh[:, 2] += geoid_heights(llh[:, 0], llh[:, 1])
        if first:
            self._say_assumed(llh)
        return llh


def _inside(lonlat: tuple[Any, ...], area: AreaOfUse) -> int:
    lon, lat = lonlat[0], lonlat[1]
    w, s, e, n = area.west, area.south, area.east, area.north
    margin = 1.0  # degrees: areas of use are drawn tight
    lon_ok = (lon >= w - margin) & (lon <= e + margin) if w <= e else (lon >= w) | (lon <= e)
    return int(np.count_nonzero(lon_ok & (lat >= s - margin) & (lat <= n + margin)))


def _most_accurate(candidates: list[Transformer]) -> Transformer:
    """The first candidate that does not guess the horizontal datum shift.

    PROJ lists a "ballpark geographic offset" (no datum shift at all, ~100 m off for
    Amersfoort) ahead of real Helmert transformations when the grid-based best one is missing.
    It is used only when PROJ knows nothing else (CGCS2000 to WGS 84), and the report says so.
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
    """(n, 3) longitude, latitude (degrees), ellipsoidal height to EPSG:4978 X, Y, Z in metres
    (written into one array, each product made once: this runs over every point of every
    point-cloud tile, and took twice as long with a stack of temporaries)."""
    lon = np.radians(llh[:, 0])
    lat = np.radians(llh[:, 1])
    h = llh[:, 2]
    sin_lat = np.sin(lat)
    n = _A / np.sqrt(1 - _E2 * sin_lat * sin_lat)
    across = (n + h) * np.cos(lat)  # distance from the polar axis
    out = np.empty((len(llh), 3), dtype=np.float64)
    out[:, 0] = across * np.cos(lon)
    out[:, 1] = across * np.sin(lon)
    out[:, 2] = (n * (1 - _E2) + h) * sin_lat
    return out


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
