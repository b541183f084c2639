"""The planning analyses CIM runs, described as OGC API Processes (1.0) describe a process: what
each is, what it takes and what it gives. `api.processes` serves them; `cim analyse` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from analysis import height_limits, indicators, schemes, sunlight
from cim.errors import NotFound

CITY = {
    "title": "City",
    "description": "The code of the city whose model is analysed, e.g. 370100.",
    "schema": {"type": "string"},
}
PARCELS = {
    "title": "Parcels",
    "description": "Parcel codes (地块编码) or ids; all the city's parcels when left out.",
    "schema": {"type": "array", "items": {"type": "string"}},
    "minOccurs": 0,
}


def _text(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "schema": {"type": "string"},
        "minOccurs": 0,
    }


def _number(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "schema": {"type": "number"},
        "minOccurs": 0,
    }


@dataclass(frozen=True)
class Process:
    """One analysis: its description, the check of its inputs and its computation."""

    id: str
    title: str
    description: str
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    check: Callable[[dict[str, Any]], dict[str, Any]]
    verify: Callable[[Connection, dict[str, Any]], Any]  # what it names exists: NotFound
    compute: Callable[[Connection, dict[str, Any]], dict[str, Any]]
    version: str = "1.0.0"

    def summary(self) -> dict[str, Any]:
        """The process summary of `/processes`."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "version": self.version,
            "jobControlOptions": ["sync-execute", "async-execute"],
            "outputTransmission": ["value"],
        }

    def description_doc(self) -> dict[str, Any]:
        """The process description of `/processes/{id}`."""
        return {**self.summary(), "inputs": self.inputs, "outputs": self.outputs}


PROCESSES: dict[str, Process] = {
    p.id: p
    for p in (
        Process(
            id="parcel-indicators",
            title="Parcel indicators (指标核算)",
            description=(
                "Per planning parcel: floor area, floor-area ratio (容积率), building density "
                "(建筑密度), highest and mean building height, each against the parcel's limits. "
                "A building across a parcel line counts by its part inside."
            ),
            inputs={
                "city": CITY,
                "parcels": PARCELS,
                "storey_height": {
                    "title": "Storey height",
                    "description": (
                        "Metres per storey, for buildings whose floors no attribute gives: "
                        "floors = height / storey height, rounded."
                    ),
                    "schema": {"type": "number", "minimum": 2, "maximum": 10, "default": 3.0},
                    "minOccurs": 0,
                },
            },
            outputs={
                "result": {
                    "title": "Indicators per parcel, the rule applied, and a summary",
                    "schema": {"type": "object", "contentMediaType": "application/json"},
                }
            },
            check=indicators.check_inputs,
            verify=indicators.verify,
            compute=indicators.compute,
        ),
        Process(
            id="height-limits",
            title="Height limits (控高分析)",
            description=(
                "Every building above the height limit of the parcels it stands in (or of a "
                "polygon or a limit surface given with the request), and by how much, from the "
                "ground or as an ellipsoidal elevation."
            ),
            inputs={
                "city": CITY,
                "parcels": PARCELS,
                "polygon": {
                    "title": "Limit polygon",
                    "description": "A GeoJSON Polygon or MultiPolygon (CRS84) with its own limit.",
                    "schema": {"type": "object", "contentMediaType": "application/geo+json"},
                    "minOccurs": 0,
                },
                "height": {
                    "title": "Limit (metres)",
                    "description": "The polygon's limit; needs 'polygon'.",
                    "schema": {"type": "number"},
                    "minOccurs": 0,
                },
                "surface": {
                    "title": "Limit surface (净空面)",
                    "description": (
                        "A GeoJSON Polygon or MultiPolygon (CRS84) whose positions carry their "
                        "limit in metres as a third number; each polygon is a plane (a TIN: "
                        "triangles). A building's limit is the surface's lowest over its "
                        "footprint."
                    ),
                    "schema": {"type": "object", "contentMediaType": "application/geo+json"},
                    "minOccurs": 0,
                },
                "reference": {
                    "title": "Height reference",
                    "description": (
                        "'ground': heights above the ground (the building's height); "
                        "'ellipsoid': elevations on the WGS 84 ellipsoid (its highest point)."
                    ),
                    "schema": {
                        "type": "string",
                        "enum": ["ground", "ellipsoid"],
                        "default": "ground",
                    },
                    "minOccurs": 0,
                },
            },
            outputs={
                "result": {
                    "title": "The buildings above their limits, by how much",
                    "schema": {"type": "object", "contentMediaType": "application/json"},
                }
            },
            check=height_limits.check_inputs,
            verify=height_limits.verify,
            compute=height_limits.compute,
        ),
        Process(
            id="sunlight",
            title="Sunlight hours (日照分析)",
            description=(
                "Hours of sun at the windows of chosen buildings (each floor's window line of "
                "their facades) or at given points, against every object around them, on the "
                "standard day (大寒日 by default, or 冬至日, or any date) in true solar time, "
                "with pass or fail against GB 50180-2018 Table 4.0.9 or a local rule."
            ),
            inputs={
                "city": CITY,
                "buildings": {
                    "title": "Buildings",
                    "description": "Ids of the buildings whose windows are checked.",
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "minOccurs": 0,
                },
                "points": {
                    "title": "Points",
                    "description": (
                        "Points of their own: lon, lat, height (ellipsoidal metres) and facing "
                        "(the azimuth their window faces, degrees; left out: any)."
                    ),
                    "schema": {"type": "array", "items": {"type": "object"}},
                    "minOccurs": 0,
                },
                "date": _text("Day", "大寒 (default), 冬至, or a date as YYYY-MM-DD."),
                "year": _number("Year of the standard day", "Default: this year."),
                "window": {
                    "title": "Window",
                    "description": "[start, end] in true solar time; default: the day's own.",
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "minOccurs": 0,
                },
                "step_minutes": _number("Step (minutes)", "Default 1."),
                "climate_zone": _text("Climate zone", "I to VII (GB 50176); default II."),
                "large_city": {
                    "title": "Large city",
                    "description": "500,000 urban residents or more (default true).",
                    "schema": {"type": "boolean"},
                    "minOccurs": 0,
                },
                "min_hours": _number("Minimum hours", "Default: the standard's."),
                "accumulate": _text("Counting", "'sum' (累计, default) or 'continuous' (连续)."),
                "min_spell_minutes": _number("Shortest spell counted (minutes)", "Default 0."),
                "sill_height": _number("Window-sill height (m)", "Above each floor; 0.9."),
                "spacing": _number("Point spacing (m)", "Along each facade; default 3."),
                "storey_height": _number("Storey height (m)", "When no attribute gives floors."),
                "facades": _text("Facades", "'sunward' (default) or 'all'."),
                "radius": _number(
                    "Radius (m)",
                    "Every object within it casts shadows; default: those whose shadow can "
                    "reach the points at the lowest sun of the window.",
                ),
            },
            outputs={
                "result": {
                    "title": "Per point: sunlit intervals, hours, pass or fail; the rule",
                    "schema": {"type": "object", "contentMediaType": "application/json"},
                }
            },
            check=sunlight.check_inputs,
            verify=sunlight.verify,
            compute=sunlight.compute,
        ),
        Process(
            id="scheme-comparison",
            title="Design scheme comparison (方案比选)",
            description=(
                "For the baseline and each design scheme: the indicators of the parcels the "
                "schemes build on, the height-limit breaches there, and the neighbours' windows "
                "that lose sunlight compared with the baseline."
            ),
            inputs={
                "city": CITY,
                "scenarios": {
                    "title": "Schemes",
                    "description": "The schemes' names (cim ingest --scenario); 1 to 8.",
                    "schema": {"type": "array", "items": {"type": "string"}},
                },
                "parcels": PARCELS,
                "buildings": {
                    "title": "Neighbours",
                    "description": (
                        "Buildings whose windows are checked; default: the baseline's "
                        "within 100 m of the schemes' objects."
                    ),
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "minOccurs": 0,
                },
                "sunlight": {
                    "title": "Sunlight options",
                    "description": "Options of the sunlight process (date, min_hours, ...).",
                    "schema": {"type": "object"},
                    "minOccurs": 0,
                },
            },
            outputs={
                "result": {
                    "title": "Per scenario: indicators, breaches, windows losing sun",
                    "schema": {"type": "object", "contentMediaType": "application/json"},
                }
            },
            check=schemes.check_inputs,
            verify=schemes.verify,
            compute=schemes.compute,
        ),
    )
}


def get_process(process_id: str) -> Process:
    """The process of that id.

    Raises:
        NotFound: no such process.
    """
    try:
        return PROCESSES[process_id]
    except KeyError:
        raise NotFound(
            f"no process {process_id!r}; processes: {', '.join(sorted(PROCESSES))}"
        ) from None
