"""CityGML 1.0, 2.0 and 3.0 to city objects, streamed.

The document is read with lxml's `iterparse`, one `cityObjectMember` at a time (each is cleared
once read), so memory is bounded by the largest member, not the file. Every feature inside a
member becomes a city object (a Building, its BuildingParts, a ReliefFeature and its TINRelief,
...) with its parent/children links. Semantic boundary surfaces (WallSurface, RoofSurface, ...,
openings included) become the semantics of their object's geometry, matched through their
`gml:id` when a solid refers to them by xlink. Simple properties, generic attributes and
addresses become attributes; any other property is kept as nested JSON, so nothing is dropped.

Safe XML: a document type declaration (DTD) is refused before parsing, and the parser resolves
no entities, loads no DTD and opens no network connection.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.model import SourceGeometry, SourceObject

VERSIONS = {
    "http://www.opengis.net/citygml/1.0": "1.0",
    "http://www.opengis.net/citygml/2.0": "2.0",
    "http://www.opengis.net/citygml/3.0": "3.0",
}
GML_NAMESPACES = {"http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2"}
GEN_PREFIX = "http://www.opengis.net/citygml/generics/"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
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
    "section",
    "intersection",
    "trafficSpace",
    "auxiliaryTrafficSpace",
}
RELIEF_GEOMETRY = {"tin", "reliefPoints", "breaklines", "ridgeOrValleyLines", "grid"}
LOD_PROPERTY = re.compile(r"^lod([0-4])([A-Za-z]+)$")
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
}
POLYGONS = {"Polygon", "Triangle", "Rectangle", "PolygonPatch"}
CURVES = {"LineString", "Curve", "LineStringSegment", "Arc", "LinearRing"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def local(tag: Any) -> str:
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def namespace(tag: Any) -> str:
    """An element's namespace URI."""
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _gml_id(el: Any) -> str | None:
    for ns in GML_NAMESPACES:
        value = el.get(f"{{{ns}}}id")
        if value:
            return str(value)
    return None


def _children(el: Any) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str)]


def sniff(head: bytes) -> bool:
    """Whether the start of a file looks like CityGML."""
    return b"<" in head[:512] and any(ns.encode() in head for ns in VERSIONS)


def _prolog_check(path: Path, head: bytes) -> None:
    """Refuse a DTD (external entities, entity-expansion bombs) before any parsing."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    else:
        text = head.decode("utf-8", errors="ignore")
    prolog = re.sub(r"<\?.*?\?>|<!--.*?-->", "", text, flags=re.DOTALL)
    start = prolog.find("<")
    if start >= 0 and prolog[start:].upper().startswith(("<!DOCTYPE", "<!ENTITY")):
        raise IngestError(
            path,
            "the XML has a document type declaration (<!DOCTYPE>); CityGML needs none, and CIM "
            "refuses it because it can fetch files or URLs or expand entities without bound",
        )


def _number(text: str) -> Any:
    t = text.strip()
    if _NUMBER.match(t):
        f = float(t)
        return int(t) if re.fullmatch(r"[+-]?\d+", t) and abs(f) < 2**53 else f
    if t in ("true", "false"):
        return t == "true"
    return t


class _Problem(ValueError):
    """A geometry or property that cannot be read; the message says which."""


class CityGmlReader:
    """A CityGML document, streamed one city-object member at a time."""

    format = "CityGML"
    axis_order = "crs"

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._path = path
        with open(path, "rb") as f:
            head = f.read(1 << 20)
        _prolog_check(path, head)
        text = head.decode("utf-8", errors="ignore")
        versions = {v for ns, v in VERSIONS.items() if ns in text}
        if not versions:
            raise IngestError(path, "not CityGML: no CityGML 1.0, 2.0 or 3.0 namespace")
        self.format_version: str | None = max(versions)
        names = re.findall(r'srsName\s*=\s*"([^"]+)"', text)
        self.crs_name: str | None = names[0] if names else None
        self.metadata: dict[str, Any] = {}
        self.appearance: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.total_objects: int | None = None
        self._seen: set[str] = set()
        self._generated = 0
        self._unresolved = 0
        self._other_srs: Counter[str] = Counter()
        self._appearances = 0
        self._skipped_rings = 0
        self._templates: dict[str, _Template] = {}

    # ------------------------------------------------------------ streaming
    def objects(self) -> Iterator[SourceObject]:
        """Yield every city object of the document, members in file order."""
        depth = 0
        root = None
        try:
            context = etree.iterparse(
                self.path,
                events=("start", "end"),
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_comments=True,
                remove_pis=True,
            )
            for event, el in context:
                if event == "start":
                    depth += 1
                    if depth == 1:
                        root = el
                        if local(el.tag) != "CityModel":
                            raise IngestError(
                                self._path,
                                f"not CityGML: the root element is {local(el.tag)!r}, "
                                "not CityModel",
                            )
                    continue
                depth -= 1
                if depth != 1:
                    continue
                name = local(el.tag)
                if name in MEMBERS:
                    for feature in _children(el):
                        yield from self._feature(feature, None, _index(el))
                elif name == "appearanceMember":
                    self._appearances += 1
                elif name == "boundedBy" and namespace(el.tag) in GML_NAMESPACES:
                    self.metadata["boundedBy"] = _value(el)
                elif name in ("name", "description"):
                    self.metadata[name] = (el.text or "").strip()
                el.clear()
                assert root is not None
                while el.getprevious() is not None:
                    del root[0]
        except etree.XMLSyntaxError as exc:
            raise IngestError(self._path, f"not well-formed XML: {exc}") from None
        self._finish_warnings()

    def _finish_warnings(self) -> None:
        if self._unresolved:
            self.warnings.append(
                f"{self._unresolved} xlink references point outside their cityObjectMember or "
                "to nothing, and were not resolved"
            )
        for name, n in self._other_srs.items():
            self.warnings.append(
                f"{n} geometries declare srsName {name!r}, not the file's {self.crs_name!r}; "
                "they were read as the file's"
            )
        if self._appearances:
            self.warnings.append(
                f"{self._appearances} appearance members (textures, materials) are kept in the "
                "source file only: CIM does not carry CityGML appearances into the model yet"
            )
        if self._skipped_rings:
            self.warnings.append(
                f"{self._skipped_rings} rings with fewer than 3 vertices were left out"
            )

    def close(self) -> None:
        """Nothing to release: the parser closes the file when the stream ends."""

    # ------------------------------------------------------------ features
    def _new_id(self, type_: str) -> str:
        self._generated += 1
        return f"{type_}_{self._generated}"

    def _feature(
        self, el: Any, parent: str | None, index: dict[str, Any], fid: str | None = None
    ) -> Iterator[SourceObject]:
        type_ = local(el.tag)
        fid = fid or _gml_id(el) or self._new_id(type_)
        if fid in self._seen:
            raise IngestError(self._path, f"gml:id {fid!r} is used by two features", fid)
        self._seen.add(fid)
        attributes: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        direct: list[tuple[str, str, Any]] = []  # (lod, property, geometry element)
        semantic: list[Any] = []
        children: list[tuple[str, Any]] = []
        relief_lod: str | None = None
        for prop in _children(el):
            pname, pns = local(prop.tag), namespace(prop.tag)
            if pname in ("boundedBy", "boundary") and pns not in GML_NAMESPACES:
                for s in _children(prop):
                    if local(s.tag) in SEMANTIC:
                        semantic.append(s)
                    else:
                        children.append((_gml_id(s) or self._new_id(local(s.tag)), s))
            elif pns in GML_NAMESPACES and pname in ("boundedBy", "location"):
                self._check_srs(prop)
            elif pns in GML_NAMESPACES and pname in ("name", "description", "identifier"):
                _add(attributes, pname, (prop.text or "").strip())
            elif (m := LOD_PROPERTY.match(pname)) is not None:
                for g in self._resolved(prop, index):
                    direct.append((m.group(1), pname, g))
            elif pname in RELIEF_GEOMETRY:
                for g in self._resolved(prop, index):
                    direct.append(("", pname, g))
            elif pname == "lod" and pns.startswith("http://www.opengis.net/citygml/relief"):
                relief_lod = (prop.text or "").strip()
            elif pname in CHILD_PROPERTIES:
                for c in _children(prop):
                    children.append((_gml_id(c) or self._new_id(local(c.tag)), c))
            elif pname == "address":
                attributes.setdefault("address", []).append(_address(prop))
            elif pns.startswith(GEN_PREFIX) and (
                pname.endswith("Attribute") or pname.endswith("AttributeSet")
            ):
                _generic(prop, attributes)
            elif pname == "genericAttribute":
                for g in _children(prop):
                    _generic(g, attributes)
            elif pname == "appearance":
                self._appearances += 1
            elif pname == "externalReference":
                extra.setdefault("externalReferences", []).append(_value(prop))
            else:
                _add(attributes, pname, _value(prop))
        try:
            geometries = self._geometries(fid, direct, semantic, index, relief_lod)
        except _Problem as exc:
            raise IngestError(self._path, str(exc), fid) from None
        yield SourceObject(
            id=fid,
            type=type_,
            attributes=attributes,
            parents=[parent] if parent else [],
            children=[cid for cid, _ in children],
            geometries=geometries,
            extra=extra,
        )
        for cid, child in children:
            yield from self._feature(child, fid, index, cid)

    def _check_srs(self, prop: Any) -> None:
        for e in prop.iter():
            name = e.get("srsName")
            if name and name != self.crs_name:
                self._other_srs[name] += 1

    def _resolved(self, prop: Any, index: dict[str, Any]) -> list[Any]:
        """The geometry elements of a property, following an xlink when it has one."""
        href = prop.get(XLINK_HREF)
        if href:
            target = index.get(href.lstrip("#"))
            if target is None:
                self._unresolved += 1
                return []
            return [target]
        return _children(prop)

    # ------------------------------------------------------------ geometry
    def _geometries(
        self,
        fid: str,
        direct: list[tuple[str, str, Any]],
        semantic: list[Any],
        index: dict[str, Any],
        relief_lod: str | None,
    ) -> list[SourceGeometry]:
        sem_surfaces: list[dict[str, Any]] = []
        sem_polys: dict[str, list[tuple[str | None, list[NDArray[np.float64]], int]]] = {}
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
            self._check_srs(g)
            polys = list(self._surfaces(g, index, False))
            if polys:
                values = [by_id.get(pid) if pid else None for pid, _ in polys]
                used.update(pid for pid, _ in polys if pid in by_id)
                out.append(_surface_geometry(gtype, lod, pname, polys, values, sem_surfaces))
                continue
            lines = list(self._lines(g, index))
            if lines:
                out.append(_line_geometry(gtype, lod, pname, lines))
                continue
            points = list(_points(g))
            if points:
                out.append(_point_geometry(gtype, lod, pname, points))
        for lod, polys in sorted(sem_polys.items()):
            left = [(pid, rings, k) for pid, rings, k in polys if not pid or pid not in used]
            if left:
                out.append(
                    _surface_geometry(
                        "MultiSurface",
                        lod,
                        "boundedBy",
                        [(pid, rings) for pid, rings, _ in left],
                        [k for _, _, k in left],
                        sem_surfaces,
                    )
                )
        return out

    def _semantic(
        self,
        s: Any,
        surfaces: list[dict[str, Any]],
        polys: dict[str, list[tuple[str | None, list[NDArray[np.float64]], int]]],
        by_id: dict[str, int],
        index: dict[str, Any],
    ) -> None:
        k = len(surfaces)
        entry: dict[str, Any] = {"type": local(s.tag)}
        if sid := _gml_id(s):
            entry["id"] = sid
        attributes: dict[str, Any] = {}
        openings = []
        for prop in _children(s):
            pname = local(prop.tag)
            if (m := LOD_PROPERTY.match(pname)) is not None:
                for g in self._resolved(prop, index):
                    for pid, rings in self._surfaces(g, index, False):
                        polys.setdefault(m.group(1), []).append((pid, rings, k))
                        if pid:
                            by_id[pid] = k
            elif pname == "opening":
                openings.extend(c for c in _children(prop) if local(c.tag) in SEMANTIC)
            elif pname in ("name", "description") or not _children(prop):
                _add(attributes, pname, (prop.text or "").strip())
            else:
                _add(attributes, pname, _value(prop))
        if attributes:
            entry["attributes"] = attributes
        surfaces.append(entry)
        for o in openings:
            o_index = len(surfaces)
            self._semantic(o, surfaces, polys, by_id, index)
            surfaces[o_index]["parent"] = k

    def _surfaces(
        self, el: Any, index: dict[str, Any], flip: bool, pid: str | None = None
    ) -> Iterator[tuple[str | None, list[NDArray[np.float64]]]]:
        """(polygon id, rings) of every polygon under `el`, xlinks followed."""
        name = local(el.tag)
        href = el.get(XLINK_HREF)
        if href:
            target = index.get(href.lstrip("#"))
            if target is None:
                self._unresolved += 1
                return
            yield from self._surfaces(target, index, flip, href.lstrip("#"))
            return
        if name in POLYGONS:
            rings = []
            for part in _children(el):
                pname = local(part.tag)
                if pname in ("exterior", "interior", "outerBoundaryIs", "innerBoundaryIs"):
                    for ring in _children(part):
                        coords = _ring(ring)
                        if len(coords) < 3:
                            self._skipped_rings += 1
                            continue
                        rings.append(coords[::-1] if flip else coords)
            if rings:
                yield (_gml_id(el) or pid, rings)
            return
        if name == "OrientableSurface" and el.get("orientation") == "-":
            flip = not flip
        if name in SURFACE_CONTAINERS or name.startswith("lod"):
            for c in _children(el):
                yield from self._surfaces(c, index, flip)

    def _lines(self, el: Any, index: dict[str, Any]) -> Iterator[NDArray[np.float64]]:
        href = el.get(XLINK_HREF)
        if href:
            target = index.get(href.lstrip("#"))
            if target is None:
                self._unresolved += 1
                return
            yield from self._lines(target, index)
            return
        name = local(el.tag)
        if name in ("LineString", "LineStringSegment", "Arc", "LinearRing"):
            coords = _coordinates(el)
            if len(coords) >= 2:
                yield coords
            return
        for c in _children(el):
            if local(c.tag) in ("Point", "MultiPoint", "pointMember", "pointMembers"):
                continue
            yield from self._lines(c, index)

    def _implicit(
        self, g: Any, lod: str, pname: str, index: dict[str, Any]
    ) -> list[SourceGeometry]:
        """An ImplicitGeometry placed: matrix x template + reference point. A template is read
        once and kept (by gml:id) for the instances of later members that refer to it."""
        matrix = np.eye(4)
        offset = np.zeros(3)
        template: _Template | None = None
        for prop in _children(g):
            name = local(prop.tag)
            if name == "transformationMatrix":
                try:
                    numbers = [float(x) for x in (prop.text or "").split()]
                except ValueError:
                    numbers = []
                if len(numbers) != 16:
                    raise _Problem("an ImplicitGeometry's transformationMatrix needs 16 numbers")
                matrix = np.array(numbers).reshape(4, 4)
            elif name == "referencePoint":
                pts = list(_points(prop))
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
            return [_surface_geometry(kind, lod, pname, placed, [None] * len(placed), [])]
        if lines:
            return [_line_geometry(kind, lod, pname, [place(x) for x in lines])]
        if points:
            return [_point_geometry(kind, lod, pname, [place(p) for p in points])]
        return []

    def _template(self, prop: Any, index: dict[str, Any]) -> _Template | None:
        href = prop.get(XLINK_HREF)
        if href:
            key = href.lstrip("#")
            if key in self._templates:
                return self._templates[key]
            element = index.get(key)
            if element is None:
                self._unresolved += 1
                return None
        else:
            kids = _children(prop)
            if not kids:
                return None
            element = kids[0]
        parsed: _Template = (
            local(element.tag),
            list(self._surfaces(element, index, False)),
            list(self._lines(element, index)),
            list(_points(element)),
        )
        if tid := _gml_id(element):
            self._templates[tid] = parsed
        return parsed


_Template = tuple[
    str,
    list[tuple[str | None, list[NDArray[np.float64]]]],
    list[NDArray[np.float64]],
    list[NDArray[np.float64]],
]


# ---------------------------------------------------------------- helpers
def _index(member: Any) -> dict[str, Any]:
    """gml:id -> element, for the xlinks inside one member."""
    out = {}
    for e in member.iter():
        if isinstance(e.tag, str) and (gid := _gml_id(e)):
            out[gid] = e
    return out


def _add(attributes: dict[str, Any], key: str, value: Any) -> None:
    """Set an attribute; a repeated property becomes a list."""
    if key in attributes:
        have = attributes[key]
        attributes[key] = [*have, value] if isinstance(have, list) else [have, value]
    else:
        attributes[key] = value


def _value(el: Any) -> Any:
    """A property as plain JSON: typed text, or nested objects for structured content."""
    kids = _children(el)
    if not kids:
        href = el.get(XLINK_HREF)
        if href and not (el.text or "").strip():
            return {"href": href}
        return _number(el.text or "")
    out: dict[str, Any] = {}
    for k in kids:
        _add(out, local(k.tag), _value(k))
    if len(out) == 1 and len(kids) == 1 and _gml_id(kids[0]) is None:
        # <con:height><con:Height>...</con:Height></con:height>: drop the type wrapper
        only = next(iter(out.values()))
        if isinstance(only, dict) and local(kids[0].tag)[:1].isupper():
            return only
    return out


def _address(prop: Any) -> dict[str, Any]:
    """An address as the xAL leaves it names (LocalityName, ThoroughfareName, ...)."""
    out: dict[str, Any] = {}
    for e in prop.iter():
        if isinstance(e.tag, str) and not _children(e) and (e.text or "").strip():
            key = local(e.tag)
            if e.get("Type"):
                key = f"{key}.{e.get('Type')}"
            _add(out, key, (e.text or "").strip())
    return out


def _generic(el: Any, attributes: dict[str, Any]) -> None:
    """gen:stringAttribute name=..., gen:*AttributeSet, CityGML 3.0 gen:StringAttribute."""
    name = el.get("name")
    kids = _children(el)
    if name is None:
        names = [k for k in kids if local(k.tag) == "name"]
        name = (names[0].text or "").strip() if names else None
    if local(el.tag).endswith("AttributeSet"):
        inner: dict[str, Any] = {}
        for k in kids:
            if local(k.tag) not in ("name",):
                _generic(k, inner)
        _add(attributes, name or "attributeSet", inner)
        return
    values = [k for k in kids if local(k.tag) == "value"]
    if name is None or not values:
        _add(attributes, local(el.tag), _value(el))
        return
    _add(attributes, name, _value(values[0]))


def _dimension(el: Any) -> int:
    e = el
    while e is not None:
        d = e.get("srsDimension")
        if d:
            return int(d)
        e = e.getparent()
    return 3


def _coordinates(el: Any) -> NDArray[np.float64]:
    """(n, 3) coordinates of a posList, pos sequence or GML 2 coordinates under `el`."""
    numbers: list[float] = []
    dim = 3
    for c in _children(el):
        name = local(c.tag)
        try:
            if name == "posList":
                dim = _dimension(c)
                numbers.extend(float(x) for x in (c.text or "").split())
            elif name == "pos":
                dim = _dimension(c)
                numbers.extend(float(x) for x in (c.text or "").split())
            elif name == "coordinates":
                ts, cs = c.get("ts", " "), c.get("cs", ",")
                tuples = [t for t in (c.text or "").strip().split(ts) if t.strip()]
                dim = len(tuples[0].split(cs)) if tuples else 3
                numbers.extend(float(x) for t in tuples for x in t.split(cs))
            elif name in ("pointProperty", "pointRep") and _children(c):
                numbers.extend(float(x) for x in _coordinates(_children(c)[0]).ravel())
        except ValueError:
            raise _Problem(f"{name} holds something that is not a number") from None
    if dim not in (2, 3) or len(numbers) % dim:
        raise _Problem(f"{len(numbers)} numbers do not make {dim}-D coordinates")
    arr = np.array(numbers, dtype=np.float64).reshape(-1, dim)
    if dim == 2:
        arr = np.column_stack((arr, np.zeros(len(arr))))
    return arr


def _ring(ring: Any) -> NDArray[np.float64]:
    """A ring's vertices without the closing repeat."""
    if local(ring.tag) == "Ring":  # a ring of curve members
        parts = [_coordinates(seg) for seg in ring.iter() if local(seg.tag) in CURVES]
        coords = np.vstack(parts) if parts else np.zeros((0, 3))
    else:
        coords = _coordinates(ring)
    if len(coords) > 1 and np.array_equal(coords[0], coords[-1]):
        coords = coords[:-1]
    return coords


def _points(el: Any) -> Iterator[NDArray[np.float64]]:
    for e in el.iter():
        if local(e.tag) == "Point":
            coords = _coordinates(e)
            if len(coords):
                yield coords[:1]


def _surface_geometry(
    gtype: str,
    lod: str,
    prop: str,
    polys: list[tuple[str | None, list[NDArray[np.float64]]]],
    values: list[int | None],
    semantic_surfaces: list[dict[str, Any]],
) -> SourceGeometry:
    rings = [r for _, rs in polys for r in rs]
    vertices = np.vstack(rings)
    structure: dict[str, Any] = {"type": gtype, "lod": lod, "property": prop}
    ids = [pid for pid, _ in polys]
    if any(ids):
        structure["surface_ids"] = ids
    semantics = None
    if any(v is not None for v in values):
        structure["semantics"] = {"surfaces": semantic_surfaces, "values": values}
        semantics = [semantic_surfaces[v]["type"] if v is not None else None for v in values]
    return SourceGeometry(
        type=gtype,
        lod=lod or None,
        kind="surface",
        vertices=vertices,
        indices=list(range(len(vertices))),
        ring_sizes=[len(r) for r in rings],
        polygon_rings=[len(rs) for _, rs in polys],
        structure=structure,
        surface_semantics=semantics,
    )


def _line_geometry(
    gtype: str, lod: str, prop: str, lines: list[NDArray[np.float64]]
) -> SourceGeometry:
    vertices = np.vstack(lines)
    return SourceGeometry(
        type=gtype,
        lod=lod or None,
        kind="line",
        vertices=vertices,
        indices=list(range(len(vertices))),
        ring_sizes=[len(x) for x in lines],
        polygon_rings=[],
        structure={"type": gtype, "lod": lod, "property": prop},
    )


def _point_geometry(
    gtype: str, lod: str, prop: str, points: list[NDArray[np.float64]]
) -> SourceGeometry:
    vertices = np.vstack(points)
    return SourceGeometry(
        type=gtype,
        lod=lod or None,
        kind="point",
        vertices=vertices,
        indices=list(range(len(vertices))),
        ring_sizes=[],
        polygon_rings=[],
        structure={"type": gtype, "lod": lod, "property": prop},
    )
