"""One tile's content from PostGIS: its objects' stored meshes joined into one GLB."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, text

from tiles.gltf import Geometry, write_glb
from tiles.metadata import property_table

# colours by semantic surface, then by object type (sRGB, 0-255)
SURFACE_COLOURS = {
    "RoofSurface": (196, 86, 66),
    "WallSurface": (236, 231, 221),
    "GroundSurface": (110, 110, 110),
    "ClosureSurface": (200, 200, 200),
    "OuterCeilingSurface": (210, 205, 195),
    "OuterFloorSurface": (150, 150, 150),
    "Window": (120, 170, 210),
    "Door": (140, 100, 70),
    "TrafficArea": (105, 105, 110),
    "AuxiliaryTrafficArea": (170, 165, 160),
    "WaterSurface": (74, 144, 194),
    "WaterGroundSurface": (60, 90, 120),
}
TYPE_COLOURS = {
    "Building": (226, 221, 211),
    "BuildingPart": (226, 221, 211),
    "Road": (120, 120, 125),
    "Railway": (100, 90, 80),
    "TransportSquare": (150, 150, 150),
    "WaterBody": (74, 144, 194),
    "PlantCover": (96, 160, 80),
    "SolitaryVegetationObject": (70, 140, 60),
    "LandUse": (201, 185, 143),
    "TINRelief": (170, 160, 130),
    "Bridge": (160, 160, 160),
    "CityFurniture": (240, 200, 40),
    "GenericCityObject": (230, 120, 200),
}
DEFAULT_COLOUR = (210, 205, 195)

_SQL = text("""
    SELECT o.id, o.source_id, o.type, o.attributes, d.name AS dataset, d.appearance,
           g.origin_x, g.origin_y, g.origin_z, g.mesh_vertices, g.mesh_triangles,
           g.mesh_surfaces, g.structure -> 'surface_types' AS surface_types,
           g.structure -> 'material' AS material,
           CASE WHEN g.mesh_vertices IS NULL AND GeometryType(g.geom) = 'MULTIPOINT'
                THEN ST_AsBinary(ST_Transform(g.geom, 4978)) END AS points
    FROM city_object o
    JOIN dataset d ON d.city_code = o.city_code AND d.id = o.dataset_id
    LEFT JOIN LATERAL (
        SELECT * FROM object_geometry g
        WHERE g.city_code = o.city_code AND g.object_id = o.id
        ORDER BY (g.mesh_vertices IS NOT NULL) DESC, g.lod DESC NULLS LAST, g.idx LIMIT 1
    ) g ON true
    WHERE o.city_code = :city AND o.tile_level = :level AND o.tile_x = :x AND o.tile_y = :y
    ORDER BY o.id""")


def _material_colours(row: Any, n_surfaces: int) -> list[tuple[int, int, int] | None] | None:
    """Per-surface colours from the object's first material theme, when it has one."""
    material, appearance = row.material, row.appearance or {}
    materials = appearance.get("materials") if isinstance(appearance, dict) else None
    if not material or not isinstance(materials, list):
        return None
    theme = next(iter(material.values()))
    if not isinstance(theme, dict):
        return None

    def colour(i: Any) -> tuple[int, int, int] | None:
        if isinstance(i, int) and 0 <= i < len(materials):
            c = materials[i].get("diffuseColor") if isinstance(materials[i], dict) else None
            if isinstance(c, list) and len(c) >= 3:
                return tuple(int(max(0.0, min(1.0, float(v))) * 255) for v in c[:3])  # type: ignore[return-value]
        return None

    if "value" in theme:
        return [colour(theme["value"])] * n_surfaces
    flat: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x)
        else:
            flat.append(node)

    walk(theme.get("values"))
    return [colour(i) for i in flat] if len(flat) == n_surfaces else None


def _surface_colours(row: Any, n_surfaces: int) -> NDArray[np.uint8]:
    fallback = TYPE_COLOURS.get(row.type, DEFAULT_COLOUR)
    types = row.surface_types or [None] * n_surfaces
    by_material = _material_colours(row, n_surfaces) or [None] * n_surfaces
    out = np.empty((n_surfaces, 4), dtype=np.uint8)
    out[:, 3] = 255
    for i in range(n_surfaces):
        semantic = types[i] if i < len(types) else None
        out[i, :3] = by_material[i] or SURFACE_COLOURS.get(semantic or "", fallback)
    return out


def _points(wkb: bytes) -> NDArray[np.float64]:
    """Coordinates of an ISO WKB MULTIPOINT Z."""
    record = np.dtype([("order", "u1"), ("kind", "<u4"), ("xyz", "<f8", (3,))])
    return np.frombuffer(wkb, dtype=record, offset=9)["xyz"].astype(np.float64)


def _row_properties(row: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": row.source_id,
        "cim_id": row.id,
        "type": row.type,
        "dataset": row.dataset,
    }
    for key, value in (row.attributes or {}).items():
        props[key if key not in props else f"attribute_{key}"] = value
    return props


def tile_content(conn: Connection, city: str, level: int, x: int, y: int) -> bytes | None:
    """The GLB of a tile, or None when the tile holds no object."""
    rows = conn.execute(_SQL, {"city": city, "level": level, "x": x, "y": y}).all()
    if not rows:
        return None
    origins, verts, tris, colours, fids = [], [], [], [], []
    points, point_fids = [], []
    base = 0
    for fid, row in enumerate(rows):
        if row.mesh_vertices is not None:
            v = np.frombuffer(row.mesh_vertices, dtype="<f4").reshape(-1, 3)
            t = np.frombuffer(row.mesh_triangles, dtype="<u4").reshape(-1, 3)
            s = np.frombuffer(row.mesh_surfaces, dtype="<u4")
            n_surfaces = int(s.max()) + 1 if len(s) else 0
            per_tri = _surface_colours(row, n_surfaces)[s]
            c = np.full((len(v), 4), 255, dtype=np.uint8)
            c[t[:, 0]] = per_tri
            c[t[:, 1]] = per_tri
            c[t[:, 2]] = per_tri
            origins.append(np.repeat([[row.origin_x, row.origin_y, row.origin_z]], len(v), 0))
            verts.append(v)
            tris.append(t.astype(np.int64) + base)
            colours.append(c)
            fids.append(np.full(len(v), fid, dtype=np.float32))
            base += len(v)
        elif row.points is not None:
            p = _points(row.points)
            points.append(p)
            point_fids.append(np.full(len(p), fid, dtype=np.float32))
    absolute = (
        np.concatenate(origins) + np.concatenate(verts).astype(np.float64)
        if verts
        else np.zeros((0, 3))
    )
    point_abs = np.concatenate(points) if points else np.zeros((0, 3))
    everything = np.concatenate((absolute, point_abs))
    center = (
        (everything.min(axis=0) + everything.max(axis=0)) / 2 if len(everything) else np.zeros(3)
    )
    indices = np.concatenate(tris).astype(np.uint32) if tris else np.zeros((0, 3), np.uint32)
    positions = (absolute - center).astype(np.float32)
    normals = _vertex_normals(positions, indices)
    point_colour = np.array([[240, 200, 40, 255]], dtype=np.uint8)
    geometry = Geometry(
        center=center,
        positions=positions,
        normals=normals,
        colors=np.concatenate(colours) if colours else np.zeros((0, 4), np.uint8),
        feature_ids=np.concatenate(fids) if fids else np.zeros(0, np.float32),
        indices=indices.reshape(-1),
        point_positions=(point_abs - center).astype(np.float32),
        point_colors=np.repeat(point_colour, len(point_abs), axis=0),
        point_feature_ids=np.concatenate(point_fids) if point_fids else np.zeros(0, np.float32),
    )
    metadata, views = property_table([_row_properties(r) for r in rows])
    return write_glb(geometry, len(rows), metadata, views)


def _vertex_normals(
    positions: NDArray[np.float32], tris: NDArray[np.uint32]
) -> NDArray[np.float32]:
    """Unit normal of each vertex from the triangles it belongs to (vertices are not shared
    between surfaces, so this is the flat normal of its surface)."""
    normals = np.zeros((len(positions), 3), dtype=np.float64)
    if len(tris):
        p = positions.astype(np.float64)
        a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
        face = np.cross(b - a, c - a)
        for k in range(3):
            np.add.at(normals, tris[:, k], face)
    length = np.linalg.norm(normals, axis=1)
    bad = length < 1e-12
    normals[bad] = (0.0, 0.0, 1.0)
    length[bad] = 1.0
    return (normals / length[:, None]).astype(np.float32)
