"""Heights: how the heights of a file become heights above the WGS 84 ellipsoid, and how well.

Heights above sea level (NAP, DHHN, JGD2011, China's 1985 datum ...) differ from ellipsoidal ones
by the geoid height: 35-50 m in the Netherlands, Germany, France, Switzerland and Japan. PROJ
converts them with the national geoid grid of their vertical datum when that grid is installed;
without it, it offers only a "ballpark" vertical transformation that keeps them as they are, and
the buildings sink by the geoid height. CIM then applies the global EGM96 geoid (`egm96_15.gtx`,
in Debian's proj-data) instead, and the ingest report says which model was used and how well it
is known to fit.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyproj.datadir
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.transformer import TransformerGroup

# Where the operating system's PROJ keeps its grids (Debian/Ubuntu: proj-data, with EGM96 and
# Germany's BETA2007). pyproj's wheel searches only its own folder, which holds no grid at all.
SYSTEM_GRID_DIRS = ("/usr/share/proj", "/usr/local/share/proj")

NATIONAL_GRID = "national grid"
GLOBAL_EGM96 = "global EGM96 geoid"
NONE_NEEDED = "none needed"
ASSUMED_ELLIPSOIDAL = "assumed ellipsoidal"
NOT_CONVERTED = "not converted"

# EGM96 against national geoid grids at published points: 0.34 m at most over the RDNAPTRANS
# test points (Netherlands), 0.47 and 1.36 m at two GSIGEO2011 points (Japan); NGA gives EGM96's
# own error as 0.5-1 m over most of the Earth, more in high mountains.
EGM96_ACCURACY_M = 2.0
EGM96_HEIGHT = "EPSG:9707"  # WGS 84 + EGM96 height


def use_system_grids() -> None:
    """Let pyproj find the grids installed for the system's PROJ and those in PROJ_DATA, after
    its own folder (whose proj.db stays the one used)."""
    current = pyproj.datadir.get_data_dir().split(os.pathsep)
    wanted = [*os.environ.get("PROJ_DATA", "").split(os.pathsep), *SYSTEM_GRID_DIRS]
    extra = [d for d in dict.fromkeys(wanted) if d and os.path.isdir(d) and d not in current]
    if extra:
        pyproj.datadir.set_data_dir(os.pathsep.join([*current, *extra]))


use_system_grids()


@dataclass(frozen=True)
class HeightHandling:
    """Which height transformation an ingest used (`method`, one of the constants above), the
    geoid model, its expected accuracy in metres (None: not known) and a sentence for users."""

    method: str
    model: str | None
    accuracy_m: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return asdict(self)


def transformations(source: CRS, target: CRS | int | str) -> TransformerGroup:
    """Every transformation PROJ knows between two CRSs (easting/longitude first), best first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "best transformation is not available": handled here
        return TransformerGroup(source, target, always_xy=True)


def _unwrapped(crs: CRS) -> CRS:
    return crs.source_crs if crs.is_bound and crs.source_crs is not None else crs


def horizontal_part(crs: CRS) -> CRS:
    """The horizontal CRS of a compound one (the CRS itself otherwise): it holds the area of use
    and the axis order of the first two coordinates."""
    crs = _unwrapped(crs)
    return _unwrapped(crs.sub_crs_list[0]) if crs.is_compound and crs.sub_crs_list else crs


def vertical_part(crs: CRS) -> CRS | None:
    """The vertical CRS of a compound CRS (heights above a geoid or sea level), else None."""
    crs = _unwrapped(crs)
    if crs.is_compound:
        return next((c for c in crs.sub_crs_list if c.is_vertical), None)
    return crs if crs.is_vertical else None


@lru_cache(maxsize=1)
def egm96() -> Transformer | None:
    """WGS 84 longitude, latitude and EGM96 height to ellipsoidal height, or None when the
    EGM96 grid is not installed (it is in Debian's proj-data)."""
    for t in transformations(CRS(EGM96_HEIGHT), CRS("EPSG:4979")).transformers:
        if "ballpark" not in t.description.lower():
            return t
    return None


def egm96_model() -> str | None:
    """The EGM96 grid file PROJ found, for the report."""
    t = egm96()
    if t is None:
        return None
    names = [grid_file(g) for op in (t.operations or ()) for g in op.grids]
    return names[0] if names else "EGM96"


def geoid_heights(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.float64]:
    """EGM96 geoid heights (metres above the WGS 84 ellipsoid) at WGS 84 positions.

    Raises:
        LookupError: the EGM96 grid is not installed.
    """
    t = egm96()
    if t is None:
        raise LookupError("the EGM96 geoid grid (egm96_15.gtx) is not installed")
    _, _, n = t.transform(lon, lat, np.zeros(len(lon)), errcheck=False)
    return np.asarray(n, dtype=np.float64)


def grid_file(grid: Any) -> str:
    """The file name of a PROJ grid as found on this machine (its catalogue name if not)."""
    return os.path.basename(grid.full_name) if grid.full_name else str(grid.short_name)


def vertical_operations(chosen: Transformer) -> list[Any]:
    """The steps of an operation that convert heights with a model (not PROJ's ballpark)."""
    return [
        op
        for op in (chosen.operations or ())
        if "height" in op.name.lower() and "ballpark" not in op.name.lower()
    ]


def missing_vertical_grids(candidates: TransformerGroup) -> list[str]:
    """Geoid grids PROJ would use for the heights if they were installed."""
    return sorted(
        {
            g.short_name
            for op in candidates.unavailable_operations
            if "height" in op.name.lower()
            for g in op.grids
            if not g.available
        }
    )


def height_handling(
    source: CRS, label: str, chosen: Transformer, candidates: TransformerGroup
) -> HeightHandling:
    """How the heights of `source` (named `label`) become ellipsoidal with PROJ's operation
    `chosen`: by the geoid grid of their datum, by EGM96 in its place (`GLOBAL_EGM96`: the
    caller adds the geoid height), as ellipsoidal already, or taken as ellipsoidal for want of a
    vertical datum."""
    vertical = vertical_part(source)
    if vertical is None:
        if len(source.axis_info) >= 3:
            return HeightHandling(
                NONE_NEEDED,
                None,
                chosen.accuracy if chosen.accuracy > 0 else None,
                f"{label} has ellipsoidal heights: they were moved to WGS 84 with the datum "
                "shift, no geoid needed",
            )
        return HeightHandling(
            ASSUMED_ELLIPSOIDAL,
            None,
            None,
            f"{label} declares no vertical datum: heights were taken as heights above the "
            "WGS 84 ellipsoid, not above sea level",
        )
    if "ballpark vertical" not in chosen.description.lower():
        ops = vertical_operations(chosen)
        grids = sorted({grid_file(g) for op in ops for g in op.grids})
        accuracies = [op.accuracy for op in ops if op.accuracy and op.accuracy > 0]
        accuracy = max(accuracies) if accuracies else None
        stated = f"; PROJ gives its accuracy as {accuracy:g} m" if accuracy else ""
        return HeightHandling(
            NATIONAL_GRID,
            ", ".join(grids) or None,
            accuracy,
            f"heights in {vertical.name} were converted by PROJ with the geoid model of that "
            f"datum ({', '.join(grids) or chosen.description}){stated}",
        )
    missing = missing_vertical_grids(candidates)
    why = (
        f"the grids of PROJ's exact transformation ({', '.join(missing)}) are not installed"
        if missing
        else "PROJ knows no geoid model for that datum"
    )
    install = (
        f" For centimetres, install {missing[0]} (`pyproj sync --file {missing[0]}`, or a copy "
        "in /usr/share/proj or ~/.local/share/proj)."
        if missing
        else ""
    )
    model = egm96_model()
    if model is None:
        return HeightHandling(
            NOT_CONVERTED,
            None,
            None,
            f"heights in {vertical.name} are above sea level, {why} and neither is the global "
            "EGM96 geoid (Debian package proj-data): they were kept as they are, so objects "
            "sit too low by the geoid height (35-50 m in much of Europe and Japan)",
        )
    return HeightHandling(
        GLOBAL_EGM96,
        model,
        EGM96_ACCURACY_M,
        f"heights in {vertical.name} are above sea level and {why}: they were converted with "
        f"the global EGM96 geoid ({model}) instead, which matches national geoids to about "
        f"0.5-1.5 m (up to {EGM96_ACCURACY_M:g} m; more in high mountains).{install}",
    )
