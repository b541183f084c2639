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

import mmap
import re
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.gml import (
    GML_ID_31,
    GML_ID_32,
    GML_NAMESPACES,
    RING_HOLDER_TAGS,
    XLINK_HREF,
    GmlProblem,
    child_elements,
    dim_value,
    dimension,
    floats,
    gml_id,
    line_geometry,
    local,
    namespace,
    point_geometry,
    read_coordinates,
    read_points,
    read_ring,
    surface_geometry,
)
from ingest.model import SourceGeometry, SourceObject

VERSIONS = {
    "http://www.opengis.net/citygml/1.0": "1.0",
    "http://www.opengis.net/citygml/2.0": "2.0",
    "http://www.opengis.net/citygml/3.0": "3.0",
}
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
POLYGONS = {"Polygon", "Triangle", "Rectangle", "PolygonPatch"}
_POLYGON_TAGS = {f"{{{ns}}}{n}" for ns in GML_NAMESPACES for n in POLYGONS}
_APPEARANCE = [
    f"{{{ns}}}Appearance"
    for ns in (
        "http://www.opengis.net/citygml/appearance/1.0",
        "http://www.opengis.net/citygml/appearance/2.0",
        "http://www.opengis.net/citygml/appearance/3.0",
    )
]
_SURFACE_DATA = [
    f"{{{ns.rsplit('}', 1)[0][1:]}}}{n}"
    for ns in _APPEARANCE
    for n in ("X3DMaterial", "ParameterizedTexture", "GeoreferencedTexture")
]
_FLAT_SURFACES = {
    f"{{{ns}}}{n}" for ns in GML_NAMESPACES for n in ("MultiSurface", "CompositeSurface", "Shell")
}
_ORIENTABLE = [f"{{{ns}}}OrientableSurface" for ns in GML_NAMESPACES]
# where an xlink to a surface can stand
_LINKABLE = ("surfaceMember", "baseSurface", "solidMember", "polygonMember")
_WALK = [*_POLYGON_TAGS, *(f"{{{ns}}}{n}" for ns in GML_NAMESPACES for n in _LINKABLE)]
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@lru_cache(maxsize=4096)
def _classify(tag: Any) -> tuple[str, str, str]:
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


def _ring_uvs(
    lists: dict[str, list[float]], ids: list[str | None], rings: list[Any], flip: bool
) -> NDArray[np.float64] | None:
    """A polygon's (u, v) per vertex from one texture's coordinate lists: each ring's found by
    its gml:id (or, for a one-ring polygon, the only list), the closing repeat dropped and
    reversed with the ring; None when a ring has none or they do not fit."""
    per_ring = []
    for rid, ring in zip(ids, rings, strict=False):
        uv = lists.get(rid) if rid else None
        if uv is None and len(rings) == 1 and len(lists) == 1:
            uv = next(iter(lists.values()))
        pairs = np.asarray(uv if uv is not None else [], dtype=np.float64)
        pairs = pairs[: len(pairs) // 2 * 2].reshape(-1, 2)
        if len(pairs) == len(ring) + 1:
            pairs = pairs[:-1]
        if len(pairs) != len(ring):
            return None
        per_ring.append(pairs[::-1] if flip else pairs)
    return np.concatenate(per_ring) if per_ring and len(per_ring) == len(rings) else None


def _number(text: str) -> Any:
    """Text as an int, float or bool when it is one (JSON-safe), else the text."""
    t = text.strip()
    if (t[:1].isdigit() or t[:1] in ("-", "+", ".")) and t.isascii():
        if t.lstrip("+-").isdigit():
            n = int(t)
            return n if abs(n) < 2**53 else t  # beyond exact doubles: keep every digit
        if _NUMBER.match(t):
            return float(t)
    elif t in ("true", "false"):
        return t == "true"
    return t


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
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = head.decode("utf-16", errors="ignore")
        else:
            text = head.decode("utf-8", errors="ignore")
        versions = {v for ns, v in VERSIONS.items() if ns in text}
        if not versions:
            raise IngestError(path, "not CityGML: no CityGML 1.0, 2.0 or 3.0 namespace")
        self.format_version: str | None = max(versions)
        first = re.search(
            r"<(?![?!])([\w.-]+:)?([\w.-]+)", re.sub(r"<!--.*?-->", "", text, flags=re.S)
        )
        self._root_name = first.group(2) if first else "?"
        names = re.findall(r"""srsName\s*=\s*["']([^"']+)["']""", text)
        self.crs_name: str | None = names[0] if names else None
        self.metadata: dict[str, Any] = {}
        # shared with the pipeline, which colours surfaces by these materials as they arrive
        self.appearance: dict[str, Any] = {"materials": [], "textures": []}
        self.warnings: list[str] = []
        self.total_objects: int | None = None
        self._seen: set[str] = set()
        self._generated = 0
        self._unresolved = 0
        self._other_srs: Counter[str] = Counter()
        self._appearances = 0
        self._global_targets = 0
        self._listed: dict[tuple[str, str], int] = {}
        self._global_material_of: dict[str, int] = {}
        self._global_textures_of: dict[str, list[dict[str, Any]]] = {}
        self._linked = 0  # polygons dressed by a global appearance
        self._material_of: dict[str, int] = {}  # polygon gml:id -> material, within a member
        self._textures_of: dict[str, list[dict[str, Any]]] = {}  # polygon gml:id -> textures
        # polygon gml:id -> its rings' gml:ids, and whether they were reversed (member's own)
        self._ring_ids: dict[str, tuple[list[str | None], bool]] = {}
        self._skipped_rings = 0
        self._unfit_textures = 0
        self._templates: dict[str, _Template] = {}
        self._dim = 3  # srsDimension of the geometry being read

    # ------------------------------------------------------------ streaming
    def _read_global_appearances(self) -> None:
        """A first, quick pass over the appearance members at the document's top level (they
        often come after the features they dress), so that the main pass can link them."""
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m.find(b"appearanceMember") < 0:
                return
        context = etree.iterparse(
            self.path,
            events=("end",),
            tag="{*}appearanceMember",
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        for _, el in context:
            parent = el.getparent()
            if parent is None or parent.getparent() is not None:
                continue  # not at the top level
            self._appearances += 1
            try:
                self._global_targets += self._read_appearances(el)
            except GmlProblem as exc:
                raise IngestError(self._path, f"appearance: {exc}") from None
            el.clear()
        self._global_material_of, self._material_of = self._material_of, {}
        self._global_textures_of, self._textures_of = self._textures_of, {}

    def objects(self) -> Iterator[SourceObject]:
        """Yield every city object of the document, members in file order."""
        root = None
        try:
            self._read_global_appearances()
            # lxml reports only these elements: Python sees one event per member, not per node
            context = etree.iterparse(
                self.path,
                events=("start", "end"),
                tag=[f"{{*}}{t}" for t in (*MEMBERS, "appearanceMember", "CityModel")],
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_comments=True,
                remove_pis=True,
            )
            for event, el in context:
                if root is None:
                    root = el if el.getparent() is None else el.getroottree().getroot()
                    info = root.getroottree().docinfo
                    if info.doctype or info.internalDTD is not None:
                        raise IngestError(
                            self._path,
                            "the XML has a document type declaration (<!DOCTYPE>); CityGML "
                            "needs none, and CIM refuses it",
                        )
                    if local(root.tag) != "CityModel":
                        raise IngestError(
                            self._path,
                            f"not CityGML: the root element is {local(root.tag)!r}, not CityModel",
                        )
                if event == "start" or el.getparent() is not root:
                    continue
                if local(el.tag) == "appearanceMember":
                    pass  # read before this pass (_read_global_appearances)
                else:
                    self._material_of, self._textures_of, self._ring_ids = {}, {}, {}
                    if next(el.iter(*_APPEARANCE), None) is not None:
                        try:
                            self._read_appearances(el)
                        except GmlProblem as exc:
                            raise IngestError(self._path, f"appearance: {exc}") from None
                    index = _LazyIndex(el)
                    for feature in child_elements(el):
                        yield from self._feature(feature, None, index)
                el.clear()
                while el.getprevious() is not None:
                    del root[0]
        except etree.XMLSyntaxError as exc:
            raise IngestError(self._path, f"not well-formed XML: {exc}") from None
        if root is None:
            raise IngestError(
                self._path, f"not CityGML: the root element is {self._root_name!r}, not CityModel"
            )
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
        if self._global_targets:
            self.metadata["global_appearances"] = {
                "members": self._appearances,
                "targets": self._global_targets,
                "linked_polygons": self._linked,
            }
        if self._global_targets and not self._linked:
            self.warnings.append(
                f"{self._appearances} global appearance members target {self._global_targets} "
                "surfaces, none of which is a polygon of this file: they are listed in the "
                "dataset only"
            )
        if self._unfit_textures:
            self.warnings.append(
                f"{self._unfit_textures} textured polygons have texture coordinates that do not "
                "match their rings: kept in the geometry's structure, drawn without the texture"
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
        return f"{type_}_cim{self._generated}"

    def _feature(
        self, el: Any, parent: str | None, index: dict[str, Any], fid: str | None = None
    ) -> Iterator[SourceObject]:
        type_ = local(el.tag)
        fid = fid or gml_id(el) or self._new_id(type_)
        if fid in self._seen:
            raise IngestError(self._path, f"gml:id {fid!r} is used by two features", fid)
        self._seen.add(fid)
        attributes: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        direct: list[tuple[str, str, Any]] = []  # (lod, property, geometry element)
        semantic: list[Any] = []
        children: list[tuple[str, Any]] = []
        relief_lod: str | None = None
        for prop in el:
            kind, pname, lod = _classify(prop.tag)
            if kind == "semantic":
                for s in child_elements(prop):
                    if local(s.tag) in SEMANTIC:
                        semantic.append(s)
                    else:
                        children.append((gml_id(s) or self._new_id(local(s.tag)), s))
            elif kind == "generic":
                _generic(prop, attributes)
            elif kind == "geometry":
                for g in self._resolved(prop, index):
                    direct.append((lod, pname, g))
            elif kind == "text":
                _add(attributes, pname, (prop.text or "").strip())
            elif kind == "srs":
                self._check_srs(prop)
            elif kind == "relief-lod":
                relief_lod = (prop.text or "").strip()
            elif kind == "child":
                for c in child_elements(prop):
                    children.append((gml_id(c) or self._new_id(local(c.tag)), c))
            elif kind == "address":
                attributes.setdefault("address", []).append(_address(prop))
            elif kind == "generic-holder":
                for g in child_elements(prop):
                    _generic(g, attributes)
            elif kind == "appearance":
                pass  # read with the whole member before its features (see _read_appearances)
            elif kind == "reference":
                extra.setdefault("externalReferences", []).append(_value(prop))
            elif kind == "attribute":
                _add(attributes, pname, _value(prop))
        try:
            geometries = self._geometries(fid, direct, semantic, index, relief_lod)
        except GmlProblem as exc:
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
        return [c for c in prop if isinstance(c.tag, str)]

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
            polys = self._surfaces(g, index, False)
            if polys:
                values = [by_id.get(pid) if pid else None for pid, _ in polys]
                used.update(pid for pid, _ in polys if pid in by_id)
                out.append(surface_geometry(gtype, lod, pname, polys, values, sem_surfaces))
                self._appearance_of(out[-1], polys)
                continue
            lines = list(self._lines(g, index))
            if lines:
                out.append(line_geometry(gtype, lod, pname, lines))
                continue
            points = list(read_points(g))
            if points:
                out.append(point_geometry(gtype, lod, pname, points))
        for lod, polys in sorted(sem_polys.items()):
            left = [(pid, rings, k) for pid, rings, k in polys if not pid or pid not in used]
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
                self._appearance_of(out[-1], polys_left)
        return out

    def _appearance_of(
        self, geometry: SourceGeometry, polys: list[tuple[str | None, list[Any]]]
    ) -> None:
        """Materials (drawn: their diffuse colour) and textures (kept: image, ring coordinates)
        that the member's appearances give this geometry's polygons."""
        local_m, local_t = self._material_of, self._textures_of
        global_m, global_t = self._global_material_of, self._global_textures_of
        if not (local_m or local_t or global_m or global_t):
            return
        ids = [pid for pid, _ in polys]
        materials = [local_m.get(pid, global_m.get(pid)) if pid else None for pid in ids]
        if any(m is not None for m in materials):
            geometry.structure["material"] = {"citygml": {"values": materials}}
        textures: dict[str, list[dict[str, Any]]] = {}
        for pid in ids:
            found = local_t.get(pid) or global_t.get(pid) if pid else None
            if pid and found:
                textures[pid] = found
        self._linked += sum(1 for pid in ids if pid and (pid in global_m or pid in global_t))
        if textures:
            geometry.structure["textures"] = textures
            self._drawable_textures(geometry, polys, textures)

    def _drawable_textures(
        self,
        geometry: SourceGeometry,
        polys: list[tuple[str | None, list[Any]]],
        textures: dict[str, list[dict[str, Any]]],
    ) -> None:
        """Each polygon's first texture whose coordinates fit its rings, resolved to (u, v) per
        vertex (a GeoreferencedTexture has none). Polygons with none that fits stay plain."""
        uvs = np.full((len(geometry.vertices), 2), np.nan)
        chosen = [-1] * len(polys)
        at = 0
        for n, (pid, rings) in enumerate(polys):
            size = sum(len(r) for r in rings)
            found = textures.get(pid) if pid else None
            if pid and found:
                ids, flip = self._ring_ids.get(pid, ([None] * len(rings), False))
                fitting = (
                    (entry["texture"], uv)
                    for entry in found
                    if (uv := _ring_uvs(entry["rings"], ids, rings, flip)) is not None
                )
                texture, uv = next(fitting, (-1, None))
                if uv is not None:
                    uvs[at : at + size] = uv
                    chosen[n] = int(texture)
                else:
                    self._unfit_textures += 1
            at += size
        if any(c >= 0 for c in chosen):
            geometry.uvs, geometry.polygon_textures = uvs, chosen

    def _shared(self, kind: str, entry: dict[str, Any]) -> int:
        """The index of an equal material or texture already listed, else of this one: the
        dataset lists each once however many members use it (memory stays bounded)."""
        key = (kind, repr(sorted(entry.items())))
        if key not in self._listed:
            self._listed[key] = len(self.appearance[kind])
            self.appearance[kind].append(entry)
        return self._listed[key]

    def _read_appearances(self, scope: Any) -> int:
        """Read every Appearance under `scope` (a member, or a global appearanceMember):
        materials join the dataset's list, textures its image list, and their targets are
        remembered for the member's polygons. Returns how many targets were read."""
        targets = 0
        ids = {gid: e for e in scope.iter() if isinstance(e.tag, str) and (gid := gml_id(e))}

        def polygons(key: str) -> list[str]:
            """A target's polygons: itself, or those of the surface aggregate it names (an
            unnamed polygon gets a generated gml:id so that the match survives)."""
            el = ids.get(key)
            if el is None or el.tag in _POLYGON_TAGS:
                return [key]
            out = []
            for n, poly in enumerate(el.iter(*_POLYGON_TAGS)):
                pid = gml_id(poly)
                if pid is None:
                    pid = f"{key}_cim{n}"
                    poly.set(GML_ID_32 if "3.2" in poly.tag else GML_ID_31, pid)
                out.append(pid)
            return out

        for app in scope.iter(*_APPEARANCE):
            theme = next((c.text for c in app if local(c.tag) == "theme"), None) or ""
            for data in app.iter(*_SURFACE_DATA):
                kind = local(data.tag)
                entry: dict[str, Any] = {"theme": theme}
                for prop in data:
                    name = local(prop.tag)
                    if name in ("target", "appearanceTarget"):
                        continue
                    if name in ("diffuseColor", "emissiveColor", "specularColor"):
                        entry[name] = floats(prop.text, name)[:3]
                    elif name in ("transparency", "shininess", "ambientIntensity"):
                        entry[name] = _number(prop.text or "")
                    elif isinstance(prop.tag, str):
                        entry[name] = _value(prop)
                if kind == "X3DMaterial":
                    m = self._shared("materials", entry)
                    for t in data.iter("{*}target"):
                        key = (t.text or "").strip().lstrip("#")
                        if key:
                            for pid in polygons(key):
                                self._material_of[pid] = m
                            targets += 1
                elif kind in ("ParameterizedTexture", "GeoreferencedTexture"):
                    t_index = self._shared(
                        "textures",
                        {
                            "image": entry.get("imageURI"),
                            "type": entry.get("mimeType"),
                            "theme": theme,
                        },
                    )
                    for t in data.iter("{*}target"):
                        key = (t.get("uri") or t.text or "").strip().lstrip("#")
                        rings = {
                            (c.get("ring") or "").lstrip("#"): floats(c.text, "texture coordinates")
                            for c in t.iter("{*}textureCoordinates")
                        }
                        if key:
                            self._textures_of.setdefault(key, []).append(
                                {"texture": t_index, "rings": rings}
                            )
                            targets += 1
        return targets

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
        if sid := gml_id(s):
            entry["id"] = sid
        attributes: dict[str, Any] = {}
        openings = []
        for prop in s:
            kind, pname, lod = _classify(prop.tag)
            if kind == "skip":
                continue
            if kind == "geometry":
                found = polys.setdefault(lod, [])
                for g in self._resolved(prop, index):
                    for pid, rings in self._surfaces(g, index, False):
                        found.append((pid, rings, k))
                        if pid:
                            by_id[pid] = k
            elif pname == "opening":
                openings.extend(c for c in child_elements(prop) if local(c.tag) in SEMANTIC)
            elif pname in ("name", "description") or not child_elements(prop):
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
    ) -> list[tuple[str | None, list[NDArray[np.float64]]]]:
        """(polygon id, rings) of every polygon under `el`, xlinks followed."""
        out: list[tuple[str | None, list[NDArray[np.float64]]]] = []
        self._dim = dimension(el)
        self._collect(el, index, flip, pid, out)
        return out

    def _collect(
        self,
        el: Any,
        index: dict[str, Any],
        flip: bool,
        pid: str | None,
        out: list[tuple[str | None, list[NDArray[np.float64]]]],
    ) -> None:
        href = el.get(XLINK_HREF)
        if href:
            key = href.lstrip("#")
            seen = getattr(index, "polygons", {}).get(key)
            if seen is not None:  # read already (a solid referring to its semantic surfaces)
                out.append((key, [r[::-1] for r in seen] if flip else seen))
                return
            target = index.get(key)
            if target is None:
                self._unresolved += 1
                return
            self._collect(target, index, flip, key, out)
            return
        tag = el.tag
        if tag in _POLYGON_TAGS:
            self._polygon(el, index, flip, pid, out)
            return
        if tag in _FLAT_SURFACES:  # MultiSurface, CompositeSurface, Shell: members one deep
            for member in el:
                if member.get(XLINK_HREF):
                    self._collect(member, index, flip, None, out)
                elif len(member) == 1 and member[0].tag in _POLYGON_TAGS:
                    self._polygon(member[0], index, flip, None, out)
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
                if e.tag in _POLYGON_TAGS:
                    self._polygon(e, index, False, None, out)
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

    def _polygon(
        self,
        el: Any,
        index: dict[str, Any],
        flip: bool,
        pid: str | None,
        out: list[tuple[str | None, list[NDArray[np.float64]]]],
    ) -> None:
        dim = dim_value(el.get("srsDimension")) or self._dim
        rings = []
        textured = bool(self._textures_of or self._global_textures_of)  # ring ids matter then
        ring_ids = []
        for part in el:
            if part.tag in RING_HOLDER_TAGS:
                for ring in part:
                    if not isinstance(ring.tag, str):
                        continue
                    coords = read_ring(ring, dim)
                    if len(coords) < 3:
                        self._skipped_rings += 1
                        continue
                    rings.append(coords[::-1] if flip else coords)
                    if textured:
                        ring_ids.append(gml_id(ring))
        if rings:
            key = gml_id(el) or pid
            if key is None:
                # named here, on the element: a solid that links to the surface holding this
                # polygon then matches it to its semantic surface, as with a real gml:id
                self._generated += 1
                key = f"_cim{self._generated}"
                el.set(GML_ID_32 if "gml/3.2" in el.tag else GML_ID_31, key)
            if not flip and isinstance(index, _LazyIndex):
                index.polygons[key] = rings
            if textured:
                self._ring_ids[key] = (ring_ids, flip)
            out.append((key, rings))

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
            coords = read_coordinates(el)
            if len(coords) >= 2:
                yield coords
            return
        for c in child_elements(el):
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
            kids = child_elements(prop)
            if not kids:
                return None
            element = kids[0]
        parsed: _Template = (
            local(element.tag),
            self._surfaces(element, index, False),
            list(self._lines(element, index)),
            list(read_points(element)),
        )
        if tid := gml_id(element):
            self._templates[tid] = parsed
        return parsed


_Template = tuple[
    str,
    list[tuple[str | None, list[NDArray[np.float64]]]],
    list[NDArray[np.float64]],
    list[NDArray[np.float64]],
]


# ---------------------------------------------------------------- helpers
def _orientable(index: dict[str, Any], el: Any) -> bool:
    """Whether `el` may hold an OrientableSurface (asked once per member when possible)."""
    if isinstance(index, _LazyIndex):
        if index.orientable is None:
            index.orientable = next(index.member.iter(*_ORIENTABLE), None) is not None
        return index.orientable
    return next(el.iter(*_ORIENTABLE), None) is not None


class _LazyIndex(dict):  # type: ignore[type-arg]
    """gml:id -> element within one member, built on the first lookup (many members have no
    xlinks), plus the polygons already read (an xlink to one is not read twice)."""

    def __init__(self, member: Any) -> None:
        super().__init__()
        self.member = member
        self.built = False
        self.polygons: dict[str, list[NDArray[np.float64]]] = {}
        self.orientable: bool | None = None

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if not self.built:
            self.built = True
            for e in self.member.iter():
                if isinstance(e.tag, str):
                    gid = e.get(GML_ID_31) or e.get(GML_ID_32)
                    if gid:
                        self[gid] = e
        return super().get(key, default)


def _add(attributes: dict[str, Any], key: str, value: Any) -> None:
    """Set an attribute; a repeated property becomes a list."""
    if key in attributes:
        have = attributes[key]
        attributes[key] = [*have, value] if isinstance(have, list) else [have, value]
    else:
        attributes[key] = value


def _value(el: Any) -> Any:
    """A property as plain JSON: typed text, or nested objects for structured content."""
    kids = child_elements(el)
    if not kids:
        href = el.get(XLINK_HREF)
        if href and not (el.text or "").strip():
            return {"href": href}
        return _number(el.text or "")
    out: dict[str, Any] = {}
    for k in kids:
        _add(out, local(k.tag), _value(k))
    if len(out) == 1 and len(kids) == 1 and gml_id(kids[0]) is None:
        # <con:height><con:Height>...</con:Height></con:height>: drop the type wrapper
        only = next(iter(out.values()))
        if isinstance(only, dict) and local(kids[0].tag)[:1].isupper():
            return only
    return out


def _address(prop: Any) -> dict[str, Any]:
    """An address as the xAL leaves it names (LocalityName, ThoroughfareName, ...)."""
    out: dict[str, Any] = {}
    for e in prop.iter():
        if isinstance(e.tag, str) and not child_elements(e) and (e.text or "").strip():
            key = local(e.tag)
            if e.get("Type"):
                key = f"{key}.{e.get('Type')}"
            _add(out, key, (e.text or "").strip())
    return out


def _generic(el: Any, attributes: dict[str, Any]) -> None:
    """gen:stringAttribute name=..., gen:*AttributeSet, CityGML 3.0 gen:StringAttribute."""
    name = el.get("name")
    if name is not None and len(el) == 1 and not len(el[0]) and el[0].tag.endswith("}value"):
        _add(attributes, name, _number(el[0].text or ""))  # the usual CityGML 2.0 form
        return
    kids = child_elements(el)
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
