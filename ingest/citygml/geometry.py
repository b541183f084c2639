"""A CityGML feature's geometries: its LoD properties (solids, multi-surfaces, curves, points),
the polygons of its semantic surfaces (openings included), matched to the solids that link to
them, and its implicit geometries (a template placed by a matrix and a reference point)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.citygml.appearance import Appearances
from ingest.citygml.crs import SrsNames
from ingest.citygml.generics import GenericAttributes
from ingest.citygml.surfaces import Polygons, SurfaceReader
from ingest.citygml.values import add_attribute, address, property_value
from ingest.citygml.vocabulary import SEMANTIC, classify
from ingest.gml import (
    XLINK_HREF,
    GmlProblem,
    child_elements,
    gml_id,
    line_geometry,
    local,
    point_geometry,
    read_points,
    surface_geometry,
)
from ingest.model import SourceGeometry

# an implicit geometry's template: its type, polygons, lines and points
_Template = tuple[str, Polygons, list[NDArray[np.float64]], list[NDArray[np.float64]]]
# LoD -> (polygon id, rings, index of its semantic surface)
_SemanticPolygons = dict[str, list[tuple[str | None, list[NDArray[np.float64]], int]]]


class GeometryReader:
    """Turns a feature's geometry properties and semantic surfaces into its geometries."""

    def __init__(
        self,
        surfaces: SurfaceReader,
        srs: SrsNames,
        appearances: Appearances,
        generics: GenericAttributes,
    ) -> None:
        self.surfaces = surfaces
        self._srs = srs
        self._appearances = appearances
        self._generics = generics
        self._templates: dict[str, _Template] = {}  # by gml:id, for the members after its own

    def geometries(
        self,
        direct: list[tuple[str, str, Any]],
        semantic: list[Any],
        index: dict[str, Any],
        relief_lod: str | None,
    ) -> list[SourceGeometry]:
        """The geometries of (LoD, property, element) `direct` and of the `semantic` surfaces'
        polygons that none of them links to, dressed by the member's appearances.

        Raises:
            GmlProblem: a geometry that cannot be read.
        """
        sem_surfaces: list[dict[str, Any]] = []
        sem_polys: _SemanticPolygons = {}
        by_id: dict[str, int] = {}
        for s in semantic:
            self._semantic(s, sem_surfaces, sem_polys, by_id, index)
        out: list[SourceGeometry] = []
        used: set[str] = set()
        for lod, pname, g in direct:
            lod = lod or relief_lod or ""
            gtype = local(g.tag)
            if gtype == "ImplicitGeometry":
                out.extend(self._implicit(g, lod, pname, index))
                continue
            self._srs.check(g)
            polys = self.surfaces.polygons(g, index, False)
            if polys:
                values = [by_id.get(pid) if pid else None for pid, _ in polys]
                used.update(pid for pid, _ in polys if pid in by_id)
                out.append(surface_geometry(gtype, lod, pname, polys, values, sem_surfaces))
                self._appearances.dress(out[-1], polys)
                continue
            lines = list(self.surfaces.lines(g, index))
            if lines:
                out.append(line_geometry(gtype, lod, pname, lines))
                continue
            points = list(read_points(g))
            if points:
                out.append(point_geometry(gtype, lod, pname, points))
        for lod, members in sorted(sem_polys.items()):
            left = [(pid, rings, k) for pid, rings, k in members if not pid or pid not in used]
            if left:
                polys_left = [(pid, rings) for pid, rings, _ in left]
                out.append(
                    surface_geometry(
                        "MultiSurface",
                        lod,
                        "boundedBy",
                        polys_left,
                        [k for _, _, k in left],
                        sem_surfaces,
                    )
                )
                self._appearances.dress(out[-1], polys_left)
        return out

    def _semantic(
        self,
        s: Any,
        surfaces: list[dict[str, Any]],
        polys: _SemanticPolygons,
        by_id: dict[str, int],
        index: dict[str, Any],
    ) -> None:
        """Add semantic surface `s` (and its openings, as its children) to `surfaces`, and its
        polygons, by LoD, to `polys`. Its attributes are read as an object's are: generic
        attributes by name and type, other properties as JSON."""
        k = len(surfaces)
        entry: dict[str, Any] = {"type": local(s.tag)}
        if sid := gml_id(s):
            entry["id"] = sid
        attributes: dict[str, Any] = {}
        openings: list[Any] = []
        for prop in s:
            kind, pname, lod = classify(prop.tag)
            if kind == "skip":
                continue
            if kind == "geometry":
                found = polys.setdefault(lod, [])
                for g in self.surfaces.resolved(prop, index):
                    for pid, rings in self.surfaces.polygons(g, index, False):
                        found.append((pid, rings, k))
                        if pid:
                            by_id[pid] = k
            elif pname == "opening":
                openings.extend(c for c in child_elements(prop) if local(c.tag) in SEMANTIC)
            elif kind in ("generic", "generic-holder"):  # named and typed, as on objects
                self._generics.read(prop, attributes)
            elif kind == "srs":  # gml:boundedBy: an envelope its polygons give anyway
                self._srs.check(prop)
            elif kind == "text":
                add_attribute(attributes, pname, (prop.text or "").strip())
            elif kind == "address":  # a door's, a list as on objects
                attributes.setdefault("address", []).append(address(prop))
            elif kind != "appearance":  # read with the whole member (Appearances.begin_member)
                add_attribute(attributes, pname, property_value(prop))
        if attributes:
            entry["attributes"] = attributes
        surfaces.append(entry)
        for o in openings:
            o_index = len(surfaces)
            self._semantic(o, surfaces, polys, by_id, index)
            surfaces[o_index]["parent"] = k

    def _implicit(
        self, g: Any, lod: str, pname: str, index: dict[str, Any]
    ) -> list[SourceGeometry]:
        """An ImplicitGeometry placed: matrix x template + reference point. A template is read
        once and kept (by gml:id) for the instances of later members that refer to it."""
        matrix = np.eye(4)
        offset = np.zeros(3)
        template: _Template | None = None
        for prop in child_elements(g):
            name = local(prop.tag)
            if name == "transformationMatrix":
                try:
                    numbers = [float(x) for x in (prop.text or "").split()]
                except ValueError:
                    numbers = []
                if len(numbers) != 16:
                    raise GmlProblem("an ImplicitGeometry's transformationMatrix needs 16 numbers")
                matrix = np.array(numbers).reshape(4, 4)
            elif name == "referencePoint":
                pts = list(read_points(prop))
                if pts:
                    offset = pts[0][0]
            elif name in ("relativeGMLGeometry", "relativeGeometry"):
                template = self._template(prop, index)
        if template is None:
            return []

        def place(v: NDArray[np.float64]) -> NDArray[np.float64]:
            return v @ matrix[:3, :3].T + matrix[:3, 3] + offset

        kind, polys, lines, points = template
        if polys:
            placed = [(pid, [place(r) for r in rs]) for pid, rs in polys]
            return [surface_geometry(kind, lod, pname, placed, [None] * len(placed), [])]
        if lines:
            return [line_geometry(kind, lod, pname, [place(x) for x in lines])]
        if points:
            return [point_geometry(kind, lod, pname, [place(p) for p in points])]
        return []

    def _template(self, prop: Any, index: dict[str, Any]) -> _Template | None:
        """The template an implicit geometry's relative geometry holds or links to."""
        href = prop.get(XLINK_HREF)
        if href:
            key = href.lstrip("#")
            if key in self._templates:
                return self._templates[key]
            element = self.surfaces.follow(key, index)
            if element is None:
                return None
        else:
            kids = child_elements(prop)
            if not kids:
                return None
            element = kids[0]
        parsed: _Template = (
            local(element.tag),
            self.surfaces.polygons(element, index, False),
            list(self.surfaces.lines(element, index)),
            list(read_points(element)),
        )
        if tid := gml_id(element):
            self._templates[tid] = parsed
        return parsed
