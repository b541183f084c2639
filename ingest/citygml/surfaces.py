"""The GML geometry under a CityGML geometry property: polygons of solids, multi-surfaces,
composite, orientable and triangulated surfaces, and lines, xlinks followed within the member."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.citygml.appearance import Appearances
from ingest.citygml.ids import GeneratedIds, MemberIndex
from ingest.citygml.vocabulary import POLYGON_TAGS
from ingest.gml import (
    GML_ID_31,
    GML_ID_32,
    GML_NAMESPACES,
    RING_HOLDER_TAGS,
    XLINK_HREF,
    child_elements,
    dim_value,
    dimension,
    gml_id,
    local,
    read_coordinates,
    read_ring,
)

# (polygon gml:id, its rings: exterior first), in the order they are read
Polygons = list[tuple[str | None, list[NDArray[np.float64]]]]

SURFACE_CONTAINERS = {
    "surfaceMember",
    "surfaceMembers",
    "patches",
    "trianglePatches",
    "polygonPatches",
    "exterior",
    "interior",
    "baseSurface",
    "solidMember",
    "solidMembers",
    "Shell",
    "CompositeSurface",
    "MultiSurface",
    "Surface",
    "TriangulatedSurface",
    "Tin",
    "Solid",
    "MultiSolid",
    "CompositeSolid",
    "OrientableSurface",
    "MultiPolygon",
    "polygonMember",
    "MultiGeometry",
    "geometryMember",
    "geometryMembers",
}
_FLAT_SURFACES = {
    f"{{{ns}}}{n}" for ns in GML_NAMESPACES for n in ("MultiSurface", "CompositeSurface", "Shell")
}
_ORIENTABLE = [f"{{{ns}}}OrientableSurface" for ns in GML_NAMESPACES]
# where an xlink to a surface can stand
_LINKABLE = ("surfaceMember", "baseSurface", "solidMember", "polygonMember")
_WALK = [*POLYGON_TAGS, *(f"{{{ns}}}{n}" for ns in GML_NAMESPACES for n in _LINKABLE)]


def _orientable(index: dict[str, Any], el: Any) -> bool:
    """Whether `el` may hold an OrientableSurface (asked once per member when possible)."""
    if isinstance(index, MemberIndex):
        if index.orientable is None:
            index.orientable = next(index.member.iter(*_ORIENTABLE), None) is not None
        return index.orientable
    return next(el.iter(*_ORIENTABLE), None) is not None


class SurfaceReader:
    """Reads the polygons and lines of geometry elements; counts what it cannot read."""

    def __init__(self, ids: GeneratedIds, appearances: Appearances) -> None:
        self._ids = ids
        self._appearances = appearances  # told each textured polygon's ring ids
        self.unresolved = 0  # xlinks to nothing within their member
        self.skipped_rings = 0  # rings of fewer than 3 vertices
        self._dim = 3  # srsDimension of the geometry being read

    def follow(self, key: str, index: dict[str, Any]) -> Any:
        """The element of the member whose gml:id is `key`, or None (counted as unresolved)."""
        target = index.get(key)
        if target is None:
            self.unresolved += 1
        return target

    def resolved(self, prop: Any, index: dict[str, Any]) -> list[Any]:
        """The geometry elements of a property, following an xlink when it has one."""
        href = prop.get(XLINK_HREF)
        if href:
            target = self.follow(href.lstrip("#"), index)
            return [] if target is None else [target]
        return [c for c in prop if isinstance(c.tag, str)]

    def polygons(
        self, el: Any, index: dict[str, Any], flip: bool, pid: str | None = None
    ) -> Polygons:
        """(polygon id, rings) of every polygon under `el`, xlinks followed."""
        out: Polygons = []
        self._dim = dimension(el)
        self._collect(el, index, flip, pid, out)
        return out

    def _collect(
        self, el: Any, index: dict[str, Any], flip: bool, pid: str | None, out: Polygons
    ) -> None:
        """Add the polygons under `el` to `out`, rings reversed when `flip` (a negative
        OrientableSurface above); `pid` names one without a gml:id (the target of an xlink)."""
        href = el.get(XLINK_HREF)
        if href:
            key = href.lstrip("#")
            seen = getattr(index, "polygons", {}).get(key)
            if seen is not None:  # read already (a solid referring to its semantic surfaces)
                out.append((key, [r[::-1] for r in seen] if flip else seen))
                return
            target = self.follow(key, index)
            if target is not None:
                self._collect(target, index, flip, key, out)
            return
        tag = el.tag
        if tag in POLYGON_TAGS:
            out.extend(self._polygon(el, index, flip, pid))
            return
        if tag in _FLAT_SURFACES:  # MultiSurface, CompositeSurface, Shell: members one deep
            for member in el:
                if member.get(XLINK_HREF):
                    self._collect(member, index, flip, None, out)
                elif len(member) == 1 and member[0].tag in POLYGON_TAGS:
                    out.extend(self._polygon(member[0], index, flip, None))
                elif isinstance(member.tag, str):
                    for c in member:
                        self._collect(c, index, flip, None, out)
            return
        name = local(tag)
        if name not in SURFACE_CONTAINERS and not name.startswith("lod"):
            return
        if not flip and not _orientable(index, el):
            # the usual case, walked by lxml in C: polygons, and members that are xlinks
            known = getattr(index, "polygons", {})
            for e in el.iter(*_WALK):
                if e.tag in POLYGON_TAGS:
                    out.extend(self._polygon(e, index, False, None))
                elif href := e.get(XLINK_HREF):
                    key = href[1:] if href.startswith("#") else href
                    if (seen := known.get(key)) is not None:
                        out.append((key, seen))  # the usual solid: links to read polygons
                    else:
                        self._collect(e, index, False, None, out)
            return
        if name == "OrientableSurface" and el.get("orientation") == "-":
            flip = not flip
        for c in child_elements(el):
            self._collect(c, index, flip, None, out)

    def _polygon(self, el: Any, index: dict[str, Any], flip: bool, pid: str | None) -> Polygons:
        """The polygon `el` as [(id, rings)], or [] when none of its rings has 3 vertices."""
        dim = dim_value(el.get("srsDimension")) or self._dim
        rings = []
        textured = self._appearances.textured  # ring ids matter then
        ring_ids = []
        for part in el:
            if part.tag in RING_HOLDER_TAGS:
                for ring in part:
                    if not isinstance(ring.tag, str):
                        continue
                    coords = read_ring(ring, dim)
                    if len(coords) < 3:
                        self.skipped_rings += 1
                        continue
                    rings.append(coords[::-1] if flip else coords)
                    if textured:
                        ring_ids.append(gml_id(ring))
        if not rings:
            return []
        key = gml_id(el) or pid
        if key is None:
            # named here, on the element: a solid that links to the surface holding this
            # polygon then matches it to its semantic surface, as with a real gml:id
            key = f"_cim{self._ids.next()}"
            el.set(GML_ID_32 if "gml/3.2" in el.tag else GML_ID_31, key)
        if not flip and isinstance(index, MemberIndex):
            index.polygons[key] = rings
        if textured:
            self._appearances.ring_ids[key] = (ring_ids, flip)
        return [(key, rings)]

    def lines(self, el: Any, index: dict[str, Any]) -> Iterator[NDArray[np.float64]]:
        """Every line under `el` (curves, rings), xlinks followed; points are left out."""
        href = el.get(XLINK_HREF)
        if href:
            target = self.follow(href.lstrip("#"), index)
            if target is not None:
                yield from self.lines(target, index)
            return
        name = local(el.tag)
        if name in ("LineString", "LineStringSegment", "Arc", "LinearRing"):
            coords = read_coordinates(el)
            if len(coords) >= 2:
                yield coords
            return
        for c in child_elements(el):
            if local(c.tag) in ("Point", "MultiPoint", "pointMember", "pointMembers"):
                continue
            yield from self.lines(c, index)
