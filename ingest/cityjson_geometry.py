"""CityJSON geometry objects to `SourceGeometry`: flattening boundaries, checking them, and keeping
semantics, materials, textures and templates so that nothing of the source is lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.model import SourceGeometry

# geometry type -> nesting depth of surfaces above the ring level (0 = MultiSurface)
SURFACE_DEPTH = {"MultiSurface": 0, "CompositeSurface": 0, "Solid": 1, "MultiSolid": 2,
                 "CompositeSolid": 2}
ALL_TYPES = {*SURFACE_DEPTH, "MultiPoint", "MultiLineString", "GeometryInstance"}


class GeometryProblem(ValueError):
    """A geometry that breaks the CityJSON rules; the message says how."""


@dataclass
class Templates:
    """The file's geometry templates, with their (untransformed) vertices."""

    templates: list[dict[str, Any]]
    vertices: NDArray[np.float64]


def _lod(geom: dict[str, Any], required: bool) -> str | None:
    lod = geom.get("lod")
    if lod is None:
        if required:
            raise GeometryProblem(f"{geom.get('type')} geometry has no 'lod'")
        return None
    if isinstance(lod, bool) or not isinstance(lod, (str, int, float)):
        raise GeometryProblem(f"'lod' must be a string or number, got {lod!r}")
    return str(lod)


def _surfaces(boundaries: Any, depth: int, gtype: str) -> tuple[list[list[Any]], Any]:
    """Flatten nested shells/solids to a list of surfaces, and return the nesting shape."""
    if not isinstance(boundaries, list):
        raise GeometryProblem(f"'boundaries' of a {gtype} must be an array")
    if depth == 0:
        return boundaries, len(boundaries)
    flat: list[list[Any]] = []
    shape: list[Any] = []
    for part in boundaries:
        sub, sub_shape = _surfaces(part, depth - 1, gtype)
        flat.extend(sub)
        shape.append(sub_shape)
    return flat, shape


def _flat_values(values: Any, depth: int) -> list[Any]:
    """Flatten semantics/material `values` nested like the surfaces (None stays None)."""
    if depth == 0:
        if not isinstance(values, list):
            raise GeometryProblem("semantic or material 'values' do not match the boundaries")
        return values
    out: list[Any] = []
    for part in values if isinstance(values, list) else []:
        out.extend(_flat_values(part, depth - 1) if part is not None else [None])
    return out


def _check_indices(flat: list[Any], n_vertices: int) -> NDArray[np.int64]:
    arr = np.array(flat) if flat else np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise GeometryProblem("boundaries must hold integer vertex indices, nested as the type says")
    if arr.size and (arr.min() < 0 or arr.max() >= n_vertices):
        bad = int(arr.max() if arr.max() >= n_vertices else arr.min())
        raise GeometryProblem(f"vertex index {bad} is out of range (the file has {n_vertices} vertices)")
    return arr.astype(np.int64, copy=False)


def _localise(
    flat: NDArray[np.int64], vertices: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    used, local = np.unique(flat, return_inverse=True)
    return np.asarray(vertices[used], dtype=np.float64), local.astype(np.int64)


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
    out: list[str | None] = []
    for v in flat:
        if v is None:
            out.append(None)
        elif isinstance(v, int) and 0 <= v < len(sem["surfaces"]):
            s = sem["surfaces"][v]
            out.append(s.get("type") if isinstance(s, dict) else None)
        else:
            raise GeometryProblem(f"semantic value {v!r} does not name one of the surfaces")
    return out


def _localise_textures(texture: Any, uv: NDArray[np.float64] | None) -> Any:
    """Replace indices into the file's texture vertices by the (u, v) pairs themselves."""
    if not isinstance(texture, dict):
        return texture
    out: dict[str, Any] = {}
    for theme, body in texture.items():
        if not isinstance(body, dict) or uv is None:
            out[theme] = body
            continue

        def walk(node: Any) -> Any:
            if isinstance(node, list) and node and all(isinstance(x, int) for x in node):
                # a ring: [texture index, uv index, uv index, ...]
                uvs = [uv[i].tolist() if 0 <= i < len(uv) else None for i in node[1:]]
                return [node[0], *uvs]
            if isinstance(node, list):
                return [walk(x) for x in node]
            return node

        out[theme] = {**body, "values": walk(body.get("values"))}
    return out


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
    lod = _lod(geom, required=True)
    boundaries = geom.get("boundaries")
    structure: dict[str, Any] = {"type": gtype, "lod": lod}
    for key in ("semantics", "material"):
        if key in geom:
            structure[key] = geom[key]
    if "texture" in geom:
        structure["texture"] = _localise_textures(geom["texture"], uv)
    extra = {k: v for k, v in geom.items()
             if k not in ("type", "lod", "boundaries", "semantics", "material", "texture")}
    if extra:
        structure["other"] = extra
    empty = np.zeros(0, dtype=np.int64)
    try:
        if gtype == "MultiPoint":
            idx = _check_indices(boundaries if isinstance(boundaries, list) else [None], len(vertices))
            coords, local = _localise(idx, vertices)
            structure["shape"] = len(idx)
            return SourceGeometry(gtype, lod, "point", coords, local, empty, empty, structure)
        if gtype == "MultiLineString":
            if not isinstance(boundaries, list) or not all(isinstance(x, list) for x in boundaries):
                raise GeometryProblem("'boundaries' of a MultiLineString must be arrays of indices")
            idx = _check_indices([i for line in boundaries for i in line], len(vertices))
            coords, local = _localise(idx, vertices)
            sizes = np.array([len(line) for line in boundaries], dtype=np.int64)
            structure["shape"] = len(boundaries)
            return SourceGeometry(gtype, lod, "line", coords, local, sizes, empty, structure)
        depth = SURFACE_DEPTH[gtype]
        surfaces, shape = _surfaces(boundaries, depth, gtype)
        rings: list[list[Any]] = []
        polygon_rings = np.empty(len(surfaces), dtype=np.int64)
        for n, surface in enumerate(surfaces):
            if not isinstance(surface, list) or not surface or not isinstance(surface[0], list):
                raise GeometryProblem(
                    f"surface {n} of the {gtype} is not an array of rings (check the nesting)"
                )
            rings.extend(surface)
            polygon_rings[n] = len(surface)
        sizes = np.fromiter((len(r) if isinstance(r, list) else -1 for r in rings),
                            dtype=np.int64, count=len(rings))
        if sizes.size and sizes.min() < 0:
            raise GeometryProblem(f"a ring of the {gtype} is not an array of vertex indices")
        if sizes.size and sizes.min() == 0:
            raise GeometryProblem(f"a ring of the {gtype} is empty")
        idx = _check_indices([i for r in rings for i in r], len(vertices))
        coords, local = _localise(idx, vertices)
    except RecursionError:
        raise GeometryProblem("boundaries nested far deeper than any CityJSON type") from None
    structure["shape"] = shape
    semantics = _semantic_types(geom, depth, len(surfaces))
    return SourceGeometry(gtype, lod, "surface", coords, local, sizes, polygon_rings, structure,
                          semantics)


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
    if (not isinstance(matrix, list) or len(matrix) != 16
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in matrix)):
        raise GeometryProblem("GeometryInstance needs a 'transformationMatrix' of 16 numbers")
    ref = geom.get("boundaries")
    if not isinstance(ref, list) or len(ref) != 1:
        raise GeometryProblem("GeometryInstance 'boundaries' must hold exactly one vertex index")
    point = vertices[_check_indices(ref, len(vertices))[0]]
    m = np.array(matrix, dtype=np.float64).reshape(4, 4)
    tv = templates.vertices
    placed = tv @ m[:3, :3].T + m[:3, 3] + point
    resolved = decode_geometry(templates.templates[t], placed, None, None)
    resolved.structure["template"] = {
        "template": t, "transformationMatrix": matrix, "referencePoint": point.tolist()
    }
    return resolved
