"""CityJSON geometry objects to `SourceGeometry`: flattening boundaries, checking their shape, and
keeping semantics, materials, textures and templates so that nothing of the source is lost.

Vertex indices are only flattened here; their type and range are checked per batch (fast) by the
preparation step, which names the object when one is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.model import SourceGeometry

# geometry type -> nesting depth of surfaces above the ring level (0 = MultiSurface)
SURFACE_DEPTH = {
    "MultiSurface": 0,
    "CompositeSurface": 0,
    "Solid": 1,
    "MultiSolid": 2,
    "CompositeSolid": 2,
}
ALL_TYPES = {*SURFACE_DEPTH, "MultiPoint", "MultiLineString", "GeometryInstance"}
_OWN = ("type", "lod", "boundaries", "semantics", "material", "texture")


class GeometryProblem(ValueError):
    """A geometry that breaks the CityJSON rules; the message says how."""


@dataclass
class Templates:
    """The file's geometry templates, with their (untransformed) vertices."""

    templates: list[Any]
    vertices: NDArray[np.float64]
    uv: NDArray[np.float64] | None = None  # the file's texture coordinates
    _decoded: dict[int, SourceGeometry] = field(default_factory=dict)

    def decoded(self, t: int) -> SourceGeometry:
        """Template `t` decoded once against the template vertices."""
        if t not in self._decoded:
            g = decode_geometry(self.templates[t], self.vertices, None, self.uv)
            n = len(self.vertices)
            if any(not isinstance(i, int) or not 0 <= i < n for i in g.indices):
                raise GeometryProblem(
                    f"template {t} uses a vertex index outside 'vertices-templates'"
                )
            self._decoded[t] = g
        return self._decoded[t]


def _lod(geom: dict[str, Any]) -> str:
    lod = geom.get("lod")
    if lod is None:
        raise GeometryProblem(f"{geom.get('type')} geometry has no 'lod'")
    if isinstance(lod, bool) or not isinstance(lod, (str, int, float)):
        raise GeometryProblem(f"'lod' must be a string or number, got {lod!r}")
    return str(lod)


def _surfaces(boundaries: Any, depth: int, gtype: str) -> tuple[list[Any], Any]:
    """Flatten nested shells/solids to a list of surfaces, and return the nesting shape."""
    if not isinstance(boundaries, list):
        raise GeometryProblem(f"'boundaries' of a {gtype} must be an array")
    if depth == 0:
        return boundaries, len(boundaries)
    flat: list[Any] = []
    shape: list[Any] = []
    for part in boundaries:
        sub, sub_shape = _surfaces(part, depth - 1, gtype)
        flat.extend(sub)
        shape.append(sub_shape)
    return flat, shape


def _flat_values(values: Any, depth: int) -> list[Any]:
    """Flatten semantics `values` nested like the surfaces (None stays None)."""
    if depth == 0:
        if not isinstance(values, list):
            raise GeometryProblem("semantic 'values' do not match the boundaries")
        return values
    out: list[Any] = []
    for part in values if isinstance(values, list) else []:
        out.extend(_flat_values(part, depth - 1) if part is not None else [None])
    return out


def _semantic_types(geom: dict[str, Any], depth: int, n_surfaces: int) -> list[str | None] | None:
    sem = geom.get("semantics")
    if sem is None:
        return None
    if not isinstance(sem, dict) or not isinstance(sem.get("surfaces"), list):
        raise GeometryProblem("'semantics' must have a 'surfaces' array")
    values = sem.get("values")
    if values is None:
        return [None] * n_surfaces
    flat = _flat_values(values, depth)
    if len(flat) != n_surfaces:
        raise GeometryProblem(
            f"semantic 'values' cover {len(flat)} surfaces but the geometry has {n_surfaces}"
        )
    surfaces = sem["surfaces"]
    out: list[str | None] = []
    for v in flat:
        if v is None:
            out.append(None)
        elif isinstance(v, int) and 0 <= v < len(surfaces):
            s = surfaces[v]
            out.append(s.get("type") if isinstance(s, dict) else None)
        else:
            raise GeometryProblem(f"semantic value {v!r} does not name one of the surfaces")
    return out


def _localise_textures(texture: Any, uv: NDArray[np.float64] | None) -> Any:
    """Replace indices into the file's texture vertices by the (u, v) pairs themselves."""
    if not isinstance(texture, dict) or uv is None:
        return texture
    table = uv.tolist()

    def walk(node: Any) -> Any:
        if isinstance(node, list) and node and all(isinstance(x, int) for x in node):
            # a ring: [texture index, uv index, uv index, ...]
            return [node[0], *(table[i] if 0 <= i < len(table) else None for i in node[1:])]
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    return {
        theme: ({**body, "values": walk(body.get("values"))} if isinstance(body, dict) else body)
        for theme, body in texture.items()
    }


def decode_geometry(
    geom: Any,
    vertices: NDArray[np.float64],
    templates: Templates | None,
    uv: NDArray[np.float64] | None,
) -> SourceGeometry:
    """One CityJSON geometry object against the vertex array it indexes.

    Raises:
        GeometryProblem: the geometry breaks the CityJSON rules.
    """
    if not isinstance(geom, dict):
        raise GeometryProblem("a geometry must be a JSON object")
    gtype = geom.get("type")
    if gtype not in ALL_TYPES:
        raise GeometryProblem(f"unknown geometry type {gtype!r}")
    if gtype == "GeometryInstance":
        return _instance(geom, vertices, templates)
    lod = _lod(geom)
    boundaries = geom.get("boundaries")
    structure: dict[str, Any] = {"type": gtype, "lod": lod}
    if "semantics" in geom:
        structure["semantics"] = geom["semantics"]
    if "material" in geom:
        structure["material"] = geom["material"]
    if "texture" in geom:
        structure["texture"] = _localise_textures(geom["texture"], uv)
    if len(geom) > 3:
        extra = {k: v for k, v in geom.items() if k not in _OWN}
        if extra:
            structure["other"] = extra
    if gtype == "MultiPoint":
        if not isinstance(boundaries, list):
            raise GeometryProblem("'boundaries' of a MultiPoint must be an array of indices")
        structure["shape"] = len(boundaries)
        return SourceGeometry(gtype, lod, "point", vertices, boundaries, [], [], structure)
    try:
        if gtype == "MultiLineString":
            if not isinstance(boundaries, list):
                raise GeometryProblem("'boundaries' of a MultiLineString must be an array")
            sizes = [len(line) for line in boundaries]
            flat = [i for line in boundaries for i in line]
            structure["shape"] = len(boundaries)
            return SourceGeometry(gtype, lod, "line", vertices, flat, sizes, [], structure)
        depth = SURFACE_DEPTH[gtype]
        surfaces, shape = _surfaces(boundaries, depth, gtype)
        polygon_rings = [
            len(s) if isinstance(s, list) and s and isinstance(s[0], list) else 0 for s in surfaces
        ]
        if 0 in polygon_rings:
            n = polygon_rings.index(0)
            raise GeometryProblem(
                f"surface {n} of the {gtype} is not an array of rings (check the nesting)"
            )
        rings = [r for s in surfaces for r in s]
        sizes = [len(r) for r in rings]
        if 0 in sizes:
            raise GeometryProblem(f"a ring of the {gtype} is empty")
        flat = [i for r in rings for i in r]
    except TypeError:
        raise GeometryProblem(
            f"'boundaries' of the {gtype} are not nested as the type requires"
        ) from None
    except RecursionError:
        raise GeometryProblem("boundaries nested far deeper than any CityJSON type") from None
    structure["shape"] = shape
    semantics = _semantic_types(geom, depth, len(surfaces))
    out = SourceGeometry(
        gtype, lod, "surface", vertices, flat, sizes, polygon_rings, structure, semantics
    )
    if "texture" in structure:
        _drawable_textures(out, structure["texture"], depth)
    return out


def _drawable_textures(geometry: SourceGeometry, texture: Any, depth: int) -> None:
    """The first theme's texture of each surface, as (u, v) per vertex: a surface is textured
    when every ring of it names the same texture and has one (u, v) per vertex."""
    body = next(iter(texture.values()), None) if isinstance(texture, dict) else None
    values = body.get("values") if isinstance(body, dict) else None
    try:
        per_surface = _flat_values(values, depth)
    except GeometryProblem:
        return
    if len(per_surface) != len(geometry.polygon_rings):
        return
    uvs = np.full((len(geometry.indices), 2), np.nan)
    chosen = [-1] * len(per_surface)
    ring = at = 0
    for n, (rings, count) in enumerate(zip(per_surface, geometry.polygon_rings, strict=True)):
        sizes = geometry.ring_sizes[ring : ring + count]
        if isinstance(rings, list) and len(rings) == count:
            textures = {r[0] if isinstance(r, list) and r else None for r in rings}
            t = textures.pop() if len(textures) == 1 else None
            pairs = [p for r in rings for p in (r[1:] if isinstance(r, list) else [])]
            if (
                isinstance(t, int)
                and 0 <= t < 2**31
                and all(
                    isinstance(r, list) and len(r) == k + 1
                    for r, k in zip(rings, sizes, strict=True)
                )
                and all(isinstance(p, list) and len(p) == 2 for p in pairs)
            ):
                uvs[at : at + sum(sizes)] = pairs
                chosen[n] = t
        ring += count
        at += sum(sizes)
    if any(c >= 0 for c in chosen):
        geometry.uvs, geometry.polygon_textures = uvs, chosen


def _instance(
    geom: dict[str, Any], vertices: NDArray[np.float64], templates: Templates | None
) -> SourceGeometry:
    """Resolve a template instance into a real geometry at its reference point."""
    if templates is None:
        raise GeometryProblem("GeometryInstance used but the file has no 'geometry-templates'")
    t = geom.get("template")
    if not isinstance(t, int) or not 0 <= t < len(templates.templates):
        raise GeometryProblem(f"GeometryInstance names template {t!r}, which does not exist")
    matrix = geom.get("transformationMatrix")
    if (
        not isinstance(matrix, list)
        or len(matrix) != 16
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in matrix)
    ):
        raise GeometryProblem("GeometryInstance needs a 'transformationMatrix' of 16 numbers")
    ref = geom.get("boundaries")
    if (
        not isinstance(ref, list)
        or len(ref) != 1
        or not isinstance(ref[0], int)
        or not 0 <= ref[0] < len(vertices)
    ):
        raise GeometryProblem("GeometryInstance 'boundaries' must hold one valid vertex index")
    point = np.asarray(vertices[ref[0]], dtype=np.float64)
    m = np.array(matrix, dtype=np.float64).reshape(4, 4)
    template = templates.decoded(t)
    placed = templates.vertices @ m[:3, :3].T + m[:3, 3] + point
    structure = dict(template.structure)
    structure["template"] = {
        "template": t,
        "transformationMatrix": matrix,
        "referencePoint": point.tolist(),
    }
    return SourceGeometry(
        template.type,
        template.lod,
        template.kind,
        placed,
        template.indices,
        template.ring_sizes,
        template.polygon_rings,
        structure,
        template.surface_semantics,
        uvs=template.uvs,
        polygon_textures=template.polygon_textures,
    )
