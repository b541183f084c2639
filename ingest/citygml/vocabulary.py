"""The CityGML names the reader acts on: member elements, semantic surfaces, child properties,
LoD and relief properties, polygon tags; and what each property of a feature is."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ingest.gml import GML_NAMESPACES, local, namespace

GEN_PREFIX = "http://www.opengis.net/citygml/generics/"
MEMBERS = {"cityObjectMember", "featureMember", "member"}
SEMANTIC = {
    "WallSurface",
    "RoofSurface",
    "GroundSurface",
    "ClosureSurface",
    "OuterCeilingSurface",
    "OuterFloorSurface",
    "CeilingSurface",
    "FloorSurface",
    "InteriorWallSurface",
    "Window",
    "Door",
    "TrafficArea",
    "AuxiliaryTrafficArea",
    "Marking",
    "HoleSurface",
    "WaterSurface",
    "WaterGroundSurface",
    "WaterClosureSurface",
}
# properties whose content is another city object, a child of this one
CHILD_PROPERTIES = {
    "consistsOfBuildingPart",
    "buildingPart",
    "consistsOfBridgePart",
    "bridgePart",
    "consistsOfTunnelPart",
    "tunnelPart",
    "reliefComponent",
    "outerBuildingInstallation",
    "interiorBuildingInstallation",
    "buildingInstallation",
    "buildingConstructiveElement",
    "interiorRoom",
    "buildingRoom",
    "roomInstallation",
    "interiorFurniture",
    "buildingFurniture",
    "outerBridgeConstruction",
    "bridgeConstructiveElement",
    "outerBridgeInstallation",
    "bridgeInstallation",
    "trafficArea",
    "auxiliaryTrafficArea",
    "outerTunnelInstallation",
    "interiorTunnelInstallation",
    "interiorHollowSpace",
    "hollowSpaceInstallation",
    "interiorBridgeInstallation",
    "interiorBridgeRoom",
    "bridgeRoomInstallation",
    "buildingSubdivision",
    "section",
    "intersection",
    "trafficSpace",
    "auxiliaryTrafficSpace",
}
RELIEF_GEOMETRY = {"tin", "reliefPoints", "breaklines", "ridgeOrValleyLines", "grid"}
LOD_PROPERTY = re.compile(r"^lod([0-4])([A-Za-z]+)$")
POLYGONS = {"Polygon", "Triangle", "Rectangle", "PolygonPatch"}
POLYGON_TAGS = {f"{{{ns}}}{n}" for ns in GML_NAMESPACES for n in POLYGONS}


@lru_cache(maxsize=4096)
def classify(tag: Any) -> tuple[str, str, str]:
    """(what a feature's property is, its local name, its LoD) — decided once per tag name."""
    if not isinstance(tag, str):
        return "skip", "", ""
    pname, pns = local(tag), namespace(tag)
    if pns in GML_NAMESPACES:
        if pname in ("boundedBy", "location"):
            return "srs", pname, ""
        if pname in ("name", "description", "identifier"):
            return "text", pname, ""
    elif pname in ("boundedBy", "boundary"):
        return "semantic", pname, ""
    if (m := LOD_PROPERTY.match(pname)) is not None:
        return "geometry", pname, m.group(1)
    if pname in RELIEF_GEOMETRY:
        return "geometry", pname, ""
    if pname == "lod" and pns.startswith("http://www.opengis.net/citygml/relief"):
        return "relief-lod", pname, ""
    if pname in CHILD_PROPERTIES:
        return "child", pname, ""
    if pname == "address":
        return "address", pname, ""
    if pns.startswith(GEN_PREFIX) and pname.endswith(("Attribute", "AttributeSet")):
        return "generic", pname, ""
    if pname == "genericAttribute":
        return "generic-holder", pname, ""
    if pname == "appearance":
        return "appearance", pname, ""
    if pname == "externalReference":
        return "reference", pname, ""
    return "attribute", pname, ""
