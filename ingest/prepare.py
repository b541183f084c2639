"""Source objects to database rows: coordinates to WGS 84 / Earth-centred, triangulation, EWKB.

Work is done per batch so that the CRS transformation runs once over many objects' vertices.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from cim.crs import FOOTPRINT_EPSG, STORAGE_EPSG, ToStorage, lonlath_to_ecef
from cim.errors import IngestError
from cim.geometry import (
    convex_hull_2d,
    ewkb_multilinestring,
    ewkb_multipoint,
    ewkb_multipolygon,
    ewkb_multipolygon_2d,
    ewkb_polygon_2d,
    ring_starts,
    triangulate,
)
from ingest.model import SourceGeometry, SourceObject

MAX_HEIGHT = 100_000.0  # metres above or below the ellipsoid; beyond is a unit or CRS mistake


@dataclass
class BatchStats:
    """What a batch added to the dataset's counts."""

    by_type: Counter[str] = field(default_factory=Counter)
    by_lod: Counter[str] = field(default_factory=Counter)
    degenerate_surfaces: int = 0
    attribute_keys: set[str] = field(default_factory=set)


@dataclass
class PreparedBatch:
    """COPY-ready rows for `city_object` and `object_geometry`."""

    objects: list[tuple[Any, ...]]
    geometries: list[tuple[Any, ...]]
    stats: BatchStats


def _footprint(
    obj: SourceObject, llh: list[NDArray[np.float64]]
) -> bytes | None:
    """2D footprint: ground surfaces, else LoD0 surfaces, else the convex hull of all vertices."""
    best: tuple[str, list[list[NDArray[np.float64]]]] | None = None
    for g, coords in zip(obj.geometries, llh, strict=True):
        if g.kind != "surface":
            continue
        want = [i for i, s in enumerate(g.surface_semantics or []) if s == "GroundSurface"]
        if not want and (g.lod or "").startswith("0"):
            want = list(range(len(g.polygon_rings)))
        if not want or (best is not None and (g.lod or "") <= best[0]):
            continue
        starts = ring_starts(g.ring_sizes)
        first_ring = ring_starts(g.polygon_rings)
        polys = []
        for p in want:
            rings = []
            for r in range(first_ring[p], first_ring[p] + g.polygon_rings[p]):
                ring = coords[g.indices[starts[r]: starts[r] + g.ring_sizes[r]], :2]
                if len(ring) >= 3:
                    rings.append(ring)
            if rings:
                polys.append(rings)
        if polys:
            best = (g.lod or "", polys)
    if best is not None:
        return ewkb_multipolygon_2d(best[1], FOOTPRINT_EPSG)
    if not llh:
        return None
    hull = convex_hull_2d(np.concatenate(llh))
    if len(hull) < 3:
        return None
    return ewkb_polygon_2d([hull], FOOTPRINT_EPSG)


def _mesh(g: SourceGeometry, ecef: NDArray[np.float64]) -> tuple[Any, ...]:
    """Origin and float32 vertices, uint32 triangles, per-triangle surface of a surface geometry."""
    tris, owners, bad = triangulate(ecef, g.indices, g.ring_sizes, g.polygon_rings)
    if not len(tris):
        return (None, None, None, None, None, None), bad
    used, local = np.unique(tris, return_inverse=True)
    pts = ecef[used]
    origin = (pts.min(axis=0) + pts.max(axis=0)) / 2
    verts = (pts - origin).astype(np.float32)
    return (
        float(origin[0]), float(origin[1]), float(origin[2]),
        verts.tobytes(), local.reshape(-1, 3).astype(np.uint32).tobytes(), owners.tobytes(),
    ), bad


def _check_coordinates(path: str, obj: SourceObject, src: NDArray[np.float64],
                       llh: NDArray[np.float64], limit: float, crs: str) -> None:
    if src.size and np.abs(src).max() > limit:
        raise IngestError(path, f"absurd coordinate {np.abs(src).max():.6g} (limit {limit:g})", obj.id)
    bad = ~np.isfinite(llh).all(axis=1) | (np.abs(llh[:, 1]) > 90) | (np.abs(llh[:, 0]) > 180) \
        | (np.abs(llh[:, 2]) > MAX_HEIGHT)
    if bad.any():
        p = src[np.argmax(bad)]
        raise IngestError(
            path, f"coordinate ({p[0]:.6g}, {p[1]:.6g}, {p[2]:.6g}) cannot be placed on Earth with "
            f"{crs}: wrong CRS, wrong units or a corrupt value", obj.id,
        )


def prepare_batch(
    path: str,
    city: str,
    dataset_id: int,
    ids: list[int],
    objects: list[SourceObject],
    to_storage: ToStorage,
    crs_label: str,
    max_abs_coordinate: float,
) -> PreparedBatch:
    """Rows for a batch of objects, given their database ids.

    Raises:
        IngestError: a coordinate cannot be placed on Earth.
    """
    geoms = [g for o in objects for g in o.geometries]
    sizes = [len(g.vertices) for g in geoms]
    if geoms:
        src = np.concatenate([g.vertices for g in geoms]) if sum(sizes) else np.zeros((0, 3))
        llh_all = to_storage.to_lonlath(src) if len(src) else np.zeros((0, 3))
        ecef_all = lonlath_to_ecef(llh_all)
    else:
        src = llh_all = ecef_all = np.zeros((0, 3))
    splits = np.cumsum(sizes)[:-1] if sizes else []
    llh_parts = np.split(llh_all, splits) if geoms else []
    src_parts = np.split(src, splits) if geoms else []
    ecef_parts = np.split(ecef_all, splits) if geoms else []
    stats = BatchStats()
    obj_rows: list[tuple[Any, ...]] = []
    geom_rows: list[tuple[Any, ...]] = []
    k = 0
    for n, obj in enumerate(objects):
        oid = ids[n]
        count = len(obj.geometries)
        llh = llh_parts[k: k + count]
        for s, ll in zip(src_parts[k: k + count], llh, strict=True):
            _check_coordinates(path, obj, s, ll, max_abs_coordinate, crs_label)
        lods = sorted({g.lod for g in obj.geometries if g.lod is not None})
        for idx, g in enumerate(obj.geometries):
            coords = llh[idx]
            if g.kind == "surface":
                geom = ewkb_multipolygon(coords, g.indices, g.ring_sizes, g.polygon_rings, STORAGE_EPSG)
                mesh, bad = _mesh(g, ecef_parts[k + idx])
                stats.degenerate_surfaces += bad
            elif g.kind == "line":
                geom = ewkb_multilinestring(coords, g.indices, g.ring_sizes, STORAGE_EPSG)
                mesh = (None,) * 6
            else:
                geom = ewkb_multipoint(coords, g.indices, STORAGE_EPSG)
                mesh = (None,) * 6
            structure = dict(g.structure)
            if g.surface_semantics is not None:
                structure["surface_types"] = g.surface_semantics
            geom_rows.append((city, oid, idx, g.lod, g.type, geom.hex(),
                              orjson.dumps(structure, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
                              *mesh))
            stats.by_lod[g.lod or "none"] += 1
        if llh:
            every = np.concatenate(llh) if count > 1 else llh[0]
        else:
            every = np.zeros((0, 3))
        if len(every):
            lo, hi = every.min(axis=0), every.max(axis=0)
            bbox = ewkb_polygon_2d(
                [np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])],
                FOOTPRINT_EPSG,
            ).hex()
            zmin, zmax = float(lo[2]), float(hi[2])
            footprint = _footprint(obj, llh)
        else:
            bbox, zmin, zmax, footprint = None, None, None, None
        attributes = orjson.dumps(obj.attributes).decode()
        extra = orjson.dumps(obj.extra).decode()
        if "\\u0000" in attributes or "\\u0000" in extra or "\x00" in obj.id:
            raise IngestError(path, "text holds a NUL character, which PostgreSQL cannot store",
                              obj.id)
        obj_rows.append((
            city, oid, dataset_id, obj.id, obj.type, obj.parents, obj.children, attributes, extra,
            lods, footprint.hex() if footprint else None, bbox, zmin, zmax,
        ))
        stats.by_type[obj.type] += 1
        stats.attribute_keys.update(obj.attributes)
        k += count
    return PreparedBatch(obj_rows, geom_rows, stats)
