"""GML geometry and names, for the CityGML reader: coordinate lists, rings, points, srsDimension,
and the `SourceGeometry` they become. Plain functions over lxml elements."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.model import SourceGeometry

GML_NAMESPACES = {"http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2"}
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

RING_HOLDER_TAGS = {
    f"{{{ns}}}{n}"
    for ns in GML_NAMESPACES
    for n in ("exterior", "interior", "outerBoundaryIs", "innerBoundaryIs")
}
POSLIST_TAGS = {f"{{{ns}}}posList" for ns in GML_NAMESPACES}
CURVES = {"LineString", "Curve", "LineStringSegment", "Arc", "LinearRing"}
# numpy reads "1 2 x 4" as [1, 2] with a DeprecationWarning: make that the error it should be
warnings.filterwarnings(
    "error", message="string or file could not be read to its end", category=DeprecationWarning
)


def local(tag: Any) -> str:
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def namespace(tag: Any) -> str:
    """An element's namespace URI."""
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


GML_ID_31 = "{http://www.opengis.net/gml}id"
GML_ID_32 = "{http://www.opengis.net/gml/3.2}id"


def gml_id(el: Any) -> str | None:
    return el.get(GML_ID_31) or el.get(GML_ID_32)


def child_elements(el: Any) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str)]


class GmlProblem(ValueError):
    """A geometry or property that cannot be read; the message says which."""


def floats(text: str | None, what: str) -> list[float]:
    """Whitespace-separated numbers.

    Raises:
        GmlProblem: one is not a number.
    """
    try:
        return [float(x) for x in (text or "").split()]
    except ValueError:
        raise GmlProblem(f"{what} {text!r} holds something that is not a number") from None


def dim_value(text: str | None) -> int:
    """An srsDimension attribute as 2 or 3 (0 when absent).

    Raises:
        GmlProblem: anything else.
    """
    if not text:
        return 0
    if text.strip() in ("2", "3", "2.0", "3.0"):
        return int(float(text))
    raise GmlProblem(f"srsDimension {text!r} is not 2 or 3")


def dimension(el: Any) -> int:
    """srsDimension of a coordinate list, inherited from its geometry (3 when none says)."""
    e = el
    while e is not None and e.tag.startswith("{http://www.opengis.net/gml"):
        d = dim_value(e.get("srsDimension"))
        if d:
            return d
        e = e.getparent()
    return 3


def read_coordinates(el: Any) -> NDArray[np.float64]:
    """(n, 3) coordinates of a posList, pos sequence or GML 2 coordinates under `el`."""
    numbers: list[float] = []
    dim = 3
    for c in child_elements(el):
        name = local(c.tag)
        try:
            if name == "posList":
                dim = dimension(c)
                values = np.fromstring(c.text or "", sep=" ")
                if len(child_elements(el)) == 1:  # the usual case: one posList, no copying
                    return shaped(values, dim)
                numbers.extend(values.tolist())
            elif name == "pos":
                dim = dimension(c)
                numbers.extend(float(x) for x in (c.text or "").split())
            elif name == "coordinates":
                ts, cs = c.get("ts", " "), c.get("cs", ",")
                tuples = [t for t in (c.text or "").strip().split(ts) if t.strip()]
                dim = len(tuples[0].split(cs)) if tuples else 3
                numbers.extend(float(x) for t in tuples for x in t.split(cs))
            elif name in ("pointProperty", "pointRep") and child_elements(c):
                numbers.extend(float(x) for x in read_coordinates(child_elements(c)[0]).ravel())
        except (DeprecationWarning, ValueError):
            raise GmlProblem(f"{name} holds something that is not a number") from None
    return shaped(np.array(numbers, dtype=np.float64), dim)


def shaped(values: NDArray[np.float64], dim: int) -> NDArray[np.float64]:
    if dim not in (2, 3) or values.size % dim:
        raise GmlProblem(f"{values.size} numbers do not make {dim}-D coordinates")
    arr = values.reshape(-1, dim)
    if dim == 2:
        arr = np.column_stack((arr, np.zeros(len(arr))))
    return arr


def read_ring(ring: Any, dim: int = 0) -> NDArray[np.float64]:
    """A ring's vertices without the closing repeat (`dim`: its polygon's srsDimension)."""
    if len(ring) == 1 and ring[0].tag in POSLIST_TAGS:  # the usual LinearRing/posList
        pos = ring[0]
        text = pos.text or ""
        try:
            values = np.fromstring(text, sep=" ")
        except (DeprecationWarning, ValueError):  # a token that is not a number
            raise GmlProblem("posList holds something that is not a number") from None
        d = dim_value(pos.get("srsDimension")) or dim_value(ring.get("srsDimension")) or dim
        d = d or dimension(pos)
        coords = shaped(values, d)
    elif local(ring.tag) == "Ring":  # a ring of curve members
        parts = [read_coordinates(seg) for seg in ring.iter() if local(seg.tag) in CURVES]
        coords = np.vstack(parts) if parts else np.zeros((0, 3))
    else:
        coords = read_coordinates(ring)
    if len(coords) > 1 and coords[0].tolist() == coords[-1].tolist():
        coords = coords[:-1]
    return coords


def read_points(el: Any) -> Iterator[NDArray[np.float64]]:
    for e in el.iter():
        if local(e.tag) == "Point":
            coords = read_coordinates(e)
            if len(coords):
                yield coords[:1]


def surface_geometry(
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
        indices=range(len(vertices)),
        ring_sizes=[len(r) for r in rings],
        polygon_rings=[len(rs) for _, rs in polys],
        structure=structure,
        surface_semantics=semantics,
    )


def line_geometry(
    gtype: str, lod: str, prop: str, lines: list[NDArray[np.float64]]
) -> SourceGeometry:
    return _unsurfaced("line", gtype, lod, prop, lines, [len(x) for x in lines])


def point_geometry(
    gtype: str, lod: str, prop: str, points: list[NDArray[np.float64]]
) -> SourceGeometry:
    return _unsurfaced("point", gtype, lod, prop, points, [])


def _unsurfaced(
    kind: str,
    gtype: str,
    lod: str,
    prop: str,
    parts: list[NDArray[np.float64]],
    ring_sizes: list[int],
) -> SourceGeometry:
    vertices = np.vstack(parts)
    return SourceGeometry(
        type=gtype,
        lod=lod or None,
        kind=kind,  # type: ignore[arg-type]
        vertices=vertices,
        indices=range(len(vertices)),
        ring_sizes=ring_sizes,
        polygon_rings=[],
        structure={"type": gtype, "lod": lod, "property": prop},
    )
