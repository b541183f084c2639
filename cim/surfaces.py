"""Default colours of city-model surfaces: by semantic surface, by material, else by object type.

Computed once at ingest (per triangle) so that tiles only copy them; viewers restyle features on
top of them.
"""

from __future__ import annotations

from typing import Any

RGB = tuple[int, int, int]

SURFACE_COLOURS: dict[str, RGB] = {
    "RoofSurface": (196, 86, 66),
    "WallSurface": (236, 231, 221),
    "GroundSurface": (110, 110, 110),
    "ClosureSurface": (200, 200, 200),
    "OuterCeilingSurface": (210, 205, 195),
    "OuterFloorSurface": (150, 150, 150),
    "Window": (120, 170, 210),
    "Door": (140, 100, 70),
    "TrafficArea": (105, 105, 110),
    "AuxiliaryTrafficArea": (170, 165, 160),
    "WaterSurface": (74, 144, 194),
    "WaterGroundSurface": (60, 90, 120),
}
TYPE_COLOURS: dict[str, RGB] = {
    "Building": (226, 221, 211),
    "BuildingPart": (226, 221, 211),
    "Road": (120, 120, 125),
    "Railway": (100, 90, 80),
    "TransportSquare": (150, 150, 150),
    "WaterBody": (74, 144, 194),
    "PlantCover": (96, 160, 80),
    "SolitaryVegetationObject": (70, 140, 60),
    "LandUse": (201, 185, 143),
    "TINRelief": (170, 160, 130),
    "Bridge": (160, 160, 160),
    "CityFurniture": (240, 200, 40),
    "GenericCityObject": (230, 120, 200),
}
DEFAULT_COLOUR: RGB = (210, 205, 195)
POINT_COLOUR: RGB = (240, 200, 40)


def _flatten(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, list):
        for x in node:
            _flatten(x, out)
    else:
        out.append(node)
    return out


def _material_colours(material: Any, materials: list[Any], n: int) -> list[RGB | None] | None:
    """Per-surface diffuse colours from a geometry's first material theme, when it has one."""
    if not isinstance(material, dict) or not material or not materials:
        return None
    theme = next(iter(material.values()))
    if not isinstance(theme, dict):
        return None

    def colour(i: Any) -> RGB | None:
        if isinstance(i, int) and 0 <= i < len(materials) and isinstance(materials[i], dict):
            c = materials[i].get("diffuseColor")
            if isinstance(c, list) and len(c) >= 3 and all(isinstance(v, (int, float)) for v in c):
                r, g, b = (int(max(0.0, min(1.0, float(v))) * 255) for v in c[:3])
                return (r, g, b)
        return None

    if "value" in theme:
        return [colour(theme["value"])] * n
    flat = _flatten(theme.get("values"), [])
    return [colour(i) for i in flat] if len(flat) == n else None


def polygon_colours(
    object_type: str,
    semantics: list[str | None] | None,
    material: Any,
    materials: list[Any],
    n: int,
) -> list[RGB]:
    """The colour of each of a geometry's `n` surfaces."""
    fallback = TYPE_COLOURS.get(object_type, DEFAULT_COLOUR)
    by_material = _material_colours(material, materials, n)
    if semantics is None and by_material is None:
        return [fallback] * n
    out = []
    for i in range(n):
        c = by_material[i] if by_material else None
        if c is None:
            s = semantics[i] if semantics and i < len(semantics) else None
            c = SURFACE_COLOURS.get(s, fallback) if s else fallback
        out.append(c)
    return out
