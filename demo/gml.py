"""The demo city as CityGML 2.0, streamed: the same objects as the CityJSON writers, encoded the way
surveying bureaus deliver them (buildings as an lod2Solid whose surfaces are xlinks to the
polygons of their semantic boundary surfaces, trees as implicit geometries of one shared
template, generic attributes). It exists to test and benchmark the CityGML reader at scale."""

from __future__ import annotations

from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

from demo.shapes import Json, Vertex
from demo.writers import Sink

NAMESPACES = {
    "": "http://www.opengis.net/citygml/2.0",
    "gml": "http://www.opengis.net/gml",
    "xlink": "http://www.w3.org/1999/xlink",
    "bldg": "http://www.opengis.net/citygml/building/2.0",
    "tran": "http://www.opengis.net/citygml/transportation/2.0",
    "veg": "http://www.opengis.net/citygml/vegetation/2.0",
    "wtr": "http://www.opengis.net/citygml/waterbody/2.0",
    "frn": "http://www.opengis.net/citygml/cityfurniture/2.0",
    "gen": "http://www.opengis.net/citygml/generics/2.0",
}
# CityJSON type -> (element, geometry property prefix)
ELEMENTS = {
    "Building": "bldg:Building",
    "Road": "tran:Road",
    "WaterBody": "wtr:WaterBody",
    "PlantCover": "veg:PlantCover",
    "SolitaryVegetationObject": "veg:SolitaryVegetationObject",
    "CityFurniture": "frn:CityFurniture",
    "GenericCityObject": "gen:GenericCityObject",
}
SURFACE_PREFIX = {"Building": "bldg", "Road": "tran", "WaterBody": "wtr"}


class GmlSink(Sink):
    """CityGML 2.0: one cityObjectMember per object, coordinates written in full (metres)."""

    def __init__(self, out: IO[bytes], header: Json) -> None:
        super().__init__()
        self._out = out
        t = header["transform"]
        self._scale, self._translate = t["scale"], t["translate"]
        template = header["geometry-templates"]
        self._template = template["templates"][0]
        self._template_vertices = template["vertices-templates"]
        self._template_written = False
        srs = header["metadata"]["referenceSystem"]
        ns = " ".join(f'xmlns{":" + k if k else ""}="{v}"' for k, v in NAMESPACES.items())
        extent = header["metadata"]["geographicalExtent"]
        out.write(
            f'<?xml version="1.0" encoding="UTF-8"?>\n<CityModel {ns}>\n'
            f"<gml:name>{escape(header['metadata']['title'])}</gml:name>\n"
            f'<gml:boundedBy><gml:Envelope srsName="{srs}" srsDimension="3">'
            f"<gml:lowerCorner>{extent[0]} {extent[1]} {extent[2]}</gml:lowerCorner>"
            f"<gml:upperCorner>{extent[3]} {extent[4]} {extent[5]}</gml:upperCorner>"
            "</gml:Envelope></gml:boundedBy>\n".encode()
        )

    @property
    def base(self) -> int:
        return 0

    def _pos(self, v: Vertex) -> str:
        s, t = self._scale, self._translate
        return f"{v[0] * s[0] + t[0]:.3f} {v[1] * s[1] + t[1]:.3f} {v[2] * s[2] + t[2]:.3f}"

    def _polygon(self, rings: list[list[int]], verts: list[Vertex], pid: str | None) -> str:
        def ring(r: list[int]) -> str:
            pts = " ".join(self._pos(verts[i]) for i in [*r, r[0]])
            return f"<gml:LinearRing><gml:posList>{pts}</gml:posList></gml:LinearRing>"

        gid = f' gml:id="{pid}"' if pid else ""
        inner = "".join(f"<gml:interior>{ring(r)}</gml:interior>" for r in rings[1:])
        return (
            f"<gml:Polygon{gid}><gml:exterior>{ring(rings[0])}</gml:exterior>{inner}</gml:Polygon>"
        )

    def add(self, oid: str, obj: Json, vertices: list[Vertex]) -> None:
        kind = obj["type"]
        element = ELEMENTS[kind]
        parts = [f'<cityObjectMember><{element} gml:id="{oid}">']
        parts += [_attribute(k, v) for k, v in obj["attributes"].items()]
        for geom in obj["geometry"]:
            parts.append(self._geometry(oid, kind, geom, vertices))
        parts.append(f"</{element}></cityObjectMember>\n")
        self._out.write("".join(parts).encode())
        super().add(oid, obj, vertices)

    def _geometry(self, oid: str, kind: str, geom: Json, verts: list[Vertex]) -> str:
        gtype, lod = geom["type"], geom.get("lod", "2")
        prefix = ELEMENTS[kind].split(":")[0]
        if gtype == "GeometryInstance":
            return self._instance(prefix, geom, verts)
        if gtype == "MultiPoint":
            points = "".join(
                f"<gml:pointMember><gml:Point><gml:pos>{self._pos(verts[i])}</gml:pos>"
                "</gml:Point></gml:pointMember>"
                for i in geom["boundaries"]
            )
            prop = "lod1Geometry" if prefix in ("frn", "gen") else f"lod{lod}MultiSurface"
            return f"<{prefix}:{prop}><gml:MultiPoint>{points}</gml:MultiPoint></{prefix}:{prop}>"
        surfaces = geom["boundaries"][0] if gtype == "Solid" else geom["boundaries"]
        sem = geom.get("semantics")
        values = (sem["values"][0] if gtype == "Solid" else sem["values"]) if sem else None
        if kind in SURFACE_PREFIX and sem and values is not None:
            # semantic boundary surfaces own the polygons; the geometry refers to them
            bounded, members = [], []
            sp = SURFACE_PREFIX[kind]
            for n, rings in enumerate(surfaces):
                pid = f"{oid}_p{n}"
                stype = sem["surfaces"][values[n]]["type"] if values[n] is not None else None
                polygon = self._polygon(rings, verts, pid)
                members.append(f'<gml:surfaceMember xlink:href="#{pid}"/>')
                if stype is None:
                    bounded.append(f"<gml:surfaceMember>{polygon}</gml:surfaceMember>")
                    continue
                bounded.append(
                    f"<{sp}:boundedBy><{sp}:{stype}><{sp}:lod{lod}MultiSurface><gml:MultiSurface>"
                    f"<gml:surfaceMember>{polygon}</gml:surfaceMember></gml:MultiSurface>"
                    f"</{sp}:lod{lod}MultiSurface></{sp}:{stype}></{sp}:boundedBy>"
                )
            loose = [b for b in bounded if b.startswith("<gml:surfaceMember>")]
            if gtype == "Solid":
                solid = (
                    f"<{prefix}:lod{lod}Solid><gml:Solid><gml:exterior><gml:CompositeSurface>"
                    + "".join(members)
                    + f"</gml:CompositeSurface></gml:exterior></gml:Solid></{prefix}:lod{lod}Solid>"
                )
                return "".join(b for b in bounded if b not in loose) + solid
            return "".join(b for b in bounded if b not in loose) + (
                f"<{prefix}:lod{lod}MultiSurface><gml:MultiSurface>{''.join(loose)}"
                f"</gml:MultiSurface></{prefix}:lod{lod}MultiSurface>"
                if loose
                else ""
            )
        polygons = "".join(
            f"<gml:surfaceMember>{self._polygon(rings, verts, None)}</gml:surfaceMember>"
            for rings in surfaces
        )
        prop = f"lod{lod}Geometry" if prefix in ("frn", "gen") else f"lod{lod}MultiSurface"
        return f"<{prefix}:{prop}><gml:MultiSurface>{polygons}</gml:MultiSurface></{prefix}:{prop}>"

    def _instance(self, prefix: str, geom: Json, verts: list[Vertex]) -> str:
        if self._template_written:
            relative = '<relativeGMLGeometry xlink:href="#demo-tree-template"/>'
        else:
            tv = self._template_vertices
            members = "".join(
                "<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>"
                + " ".join(f"{tv[i][0]} {tv[i][1]} {tv[i][2]}" for i in [*rings[0], rings[0][0]])
                + "</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>"
                for rings in self._template["boundaries"]
            )
            relative = (
                '<relativeGMLGeometry><gml:MultiSurface gml:id="demo-tree-template">'
                f"{members}</gml:MultiSurface></relativeGMLGeometry>"
            )
            self._template_written = True
        matrix = " ".join(str(x) for x in geom["transformationMatrix"])
        point = self._pos(verts[geom["boundaries"][0]])
        return (
            f"<{prefix}:lod2ImplicitRepresentation><ImplicitGeometry>"
            f"<transformationMatrix>{matrix}</transformationMatrix>{relative}"
            f"<referencePoint><gml:Point><gml:pos>{point}</gml:pos></gml:Point></referencePoint>"
            f"</ImplicitGeometry></{prefix}:lod2ImplicitRepresentation>"
        )

    def close(self) -> None:
        self._out.write(b"</CityModel>\n")


def _attribute(name: str, value: Any) -> str:
    if isinstance(value, bool):
        kind, text = "stringAttribute", "true" if value else "false"
    elif isinstance(value, int):
        kind, text = "intAttribute", str(value)
    elif isinstance(value, float):
        kind, text = "doubleAttribute", repr(value)
    else:
        kind, text = "stringAttribute", str(value)
    return f"<gen:{kind} name={quoteattr(name)}><gen:value>{escape(text)}</gen:value></gen:{kind}>"
