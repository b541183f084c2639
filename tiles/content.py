"""One tile's content from PostGIS: its objects' stored meshes, joined into one GLB.

Everything per vertex is done with NumPy over the whole tile; the only per-object Python work
is collecting each row's bytes and its property-table row.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import chain, groupby
from operator import attrgetter
from typing import Any, cast

import numpy as np
import orjson
import psycopg
from numpy.typing import NDArray
from sqlalchemy import Connection, TextClause, text

from cim.crs import lonlath_to_ecef
from cim.db.scenarios import OBJECTS
from cim.geometry import starts_of
from cim.surfaces import DEFAULT_COLOUR, POINT_COLOUR
from cim.tiling import CLOUD_TYPE  # the tileset names tiles by the same rule
from tiles.atlas import pack, within_budget
from tiles.gltf import Geometry, TexturedPart, column_bounds, write_b3dm, write_glb
from tiles.meshopt import compress, first_use, reorder
from tiles.metadata import column_batch_table, column_table
from tiles.pnts import write_cmpt, write_pnts
from tiles.points import PointAttributes, las_attributes
from tiles.properties import PropertySchema

_SELECT = """
    SELECT o.id, o.source_id, o.type, o.tile_level, o.tile_x, o.tile_y,
           o.attributes::text AS attributes,
           o.z_max - o.z_min AS height,
           g.origin_x, g.origin_y, g.origin_z, g.mesh_vertices, g.mesh_triangles,
           g.mesh_colours, g.mesh_uvs, g.mesh_textures, o.dataset_id,
           CASE WHEN g.mesh_vertices IS NULL AND GeometryType(g.geom) = 'MULTIPOINT'
                THEN ST_AsBinary(g.geom) END AS points,
           CASE WHEN g.mesh_vertices IS NULL AND GeometryType(g.geom) = 'MULTIPOINT'
                THEN g.point_data END AS point_records,
           CASE WHEN g.mesh_vertices IS NULL
                THEN (g.structure -> 'point_data')::text END AS point_layout,
           CASE WHEN g.mesh_vertices IS NULL AND GeometryType(g.geom) = 'MULTILINESTRING'
                THEN ST_AsBinary(ST_Transform(g.geom, 4978)) END AS lines
    FROM city_object o
    LEFT JOIN object_geometry g ON g.city_code = o.city_code AND g.object_id = o.id
         AND g.idx = o.display_idx
    WHERE o.city_code = :city AND {where}
    ORDER BY o.id"""
# a point cloud's record layout is read for rows with no mesh only: reading it from every row's
# structure (detoasted, often decompressed) cost PostgreSQL about 1 µs of its 10-11 µs per
# building in a seeding's batches (backend CPU, four alternating rounds of 253,000 rows)
_SQL = text(_SELECT.format(where="o.tile_level = :level AND o.tile_x = :x AND o.tile_y = :y"))
# a part of over-full tiles (tiles.split): its objects by id
_SQL_IDS = text(_SELECT.format(where="o.id = ANY(:ids)"))
# many parts at once: their objects in no order (sorting megabytes of points on the server would
# spill to disk; `part_contents` puts each part's in order)
_SQL_PARTS = text(_SELECT.format(where="o.id = ANY(:ids)").replace("ORDER BY o.id", ""))
# a tile of a design scheme's view of its city (cim.db.scenarios): the tile's condition reaches
# both of the view's branches (each an index scan), the baseline's objects first
_SQL_SCENARIO = text(
    _SELECT.replace("FROM city_object o", f"FROM ({OBJECTS}) o")
    .replace("o.city_code = :city AND ", "")
    .replace("ORDER BY o.id", "ORDER BY o.city_code = :scheme, o.id")
    .format(where="o.tile_level = :level AND o.tile_x = :x AND o.tile_y = :y")
)
# many tiles at once (seeding): the keys drive an index scan per tile (as `(level, x, y) IN
# (SELECT ... unnest ...)` the planner scanned the whole city for every batch: seconds per batch
# at a million objects); in no order (a sort of megabytes of meshes spilt to disk):
# `tile_contents` puts them in tile order, then by id
_SQL_MANY = text(
    _SELECT.replace(
        "FROM city_object o",
        "FROM unnest(CAST(:levels AS int[]), CAST(:xs AS int[]), CAST(:ys AS int[])) AS k(l, x, y)"
        " JOIN city_object o ON o.city_code = :city AND o.tile_level = k.l"
        " AND o.tile_x = k.x AND o.tile_y = k.y",
    )
    .format(where="true")
    .replace("ORDER BY o.id", "")
)


@lru_cache(maxsize=64)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    """A tuple type whose fields are also read by name, made by calling it on a tuple: a C call
    per row, where psycopg's named tuples call a Python function (`_make`) per row, a fifth of
    reading a tile's rows."""
    named = namedtuple("Row", names)  # type: ignore[misc]  # noqa: PYI024
    fields = {name: named.__dict__[name] for name in names}  # its C field getters
    return type("Row", (tuple,), {"__slots__": (), **fields})


def _rows(cursor: psycopg.Cursor[Any]) -> Any:
    """psycopg's row factory of `_row_class` rows."""
    return _row_class(tuple(column.name for column in cursor.description or ()))


def _fetch(conn: Connection, query: TextClause, params: dict[str, Any]) -> list[Any]:
    """The rows of a content query (tuples whose fields are read by name) in the transaction of
    `conn`, fetched in PostgreSQL's binary format: as text, bytea comes as hex twice its size
    to be decoded again, which took longer than anything else in a point-cloud tile."""
    compiled = query.compile(dialect=conn.dialect)
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    with raw.cursor(binary=True, row_factory=_rows) as cursor:
        return cursor.execute(str(compiled), compiled.construct_params(params)).fetchall()


_NO_INDICES = np.zeros(0, np.uint32)
_NO_VERTICES = np.zeros(0, np.int64)
# a point of an ISO WKB MULTIPOINT Z: byte order, type, x y z
_WKB_POINT = np.dtype([("order", "u1"), ("kind", "<u4"), ("xyz", "<f8", (3,))])


def _points(wkb: bytes) -> NDArray[np.float64]:
    """Coordinates of an ISO WKB MULTIPOINT Z: stored ones are longitude, latitude and
    ellipsoidal height (EPSG:4979)."""
    return np.frombuffer(wkb, dtype=_WKB_POINT, offset=9)["xyz"]


def _lines(wkb: bytes) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Vertices and segment index pairs of an ISO WKB MULTILINESTRING Z."""
    (count,) = np.frombuffer(wkb, "<u4", 1, 5)
    at, points, pairs, base = 9, [], [], 0
    for _ in range(int(count)):
        (n,) = np.frombuffer(wkb, "<u4", 1, at + 5)
        xyz = np.frombuffer(wkb, "<f8", int(n) * 3, at + 9).reshape(-1, 3)
        points.append(xyz)
        k = np.arange(base, base + int(n) - 1)
        pairs.append(np.column_stack((k, k + 1)))
        base += int(n)
        at += 9 + int(n) * 24
    return (
        np.concatenate(points) if points else np.zeros((0, 3)),
        np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64),
    )


def _las(row: Any) -> bool:
    """A row whose points come with their LAS records."""
    return row.point_records is not None and row.point_layout is not None


@lru_cache(maxsize=256)
def _layout(text: str) -> dict[str, Any]:
    """A LAS record layout (geometry structure's `point_data`), parsed once: the objects of a
    file share one, and a tile has thousands of them."""
    parsed: dict[str, Any] = orjson.loads(text)
    return parsed


def _point_attributes(
    rows: list[tuple[Any, int]],
) -> tuple[NDArray[np.uint8], PointAttributes | None]:
    """RGBA per point (the point cloud's colours, else the default point colour), and the
    classification and intensity of the points of the leading rows that have LAS records
    (rows come with LAS rows first)."""
    colours, attributes = [], []
    for row, count in rows:
        if _las(row):
            a = las_attributes(row.point_records, _layout(row.point_layout))
            attributes.append(a)
            colours.append(a.colours)
        else:
            colours.append(np.tile(np.array(POINT_COLOUR, dtype=np.uint8), (count, 1)))
    rgb = np.concatenate(colours) if colours else np.zeros((0, 3), np.uint8)
    rgba = np.column_stack((rgb, np.full(len(rgb), 255, np.uint8)))
    if not attributes:
        return rgba, None
    return rgba, PointAttributes(
        np.concatenate([a.colours for a in attributes]),
        np.concatenate([a.classification for a in attributes]),
        np.concatenate([a.intensity for a in attributes]),
    )


def _content_1_0(
    geometry: Geometry,
    rows: Sequence[Any],
    point_rows: list[tuple[Any, int]],
    columns: dict[str, list[Any]],
    schema: PropertySchema,
) -> bytes:
    """3D Tiles 1.0 content: the points of point-cloud objects as pnts, every other object as
    b3dm (batched), and both in a cmpt when the tile has both — the rule the tileset names
    the content by. `point_rows`: the rows with points, and how many each has."""
    flags = [r.type == CLOUD_TYPE for r, _ in point_rows]
    cloud = np.repeat(np.array(flags, dtype=bool), [n for _, n in point_rows])
    parts = []
    if any(r.type != CLOUD_TYPE for r in rows):
        rest = replace(
            geometry,
            point_positions=geometry.point_positions[~cloud],
            point_colors=geometry.point_colors[~cloud],
            point_feature_ids=geometry.point_feature_ids[~cloud],
            point_attributes=None,
        )
        glb = write_glb(rest, len(rows), None, [], batch_ids=True)
        parts.append(write_b3dm(glb, len(rows), column_batch_table(columns, schema)))
    if any(r.type == CLOUD_TYPE for r in rows):
        attributes = geometry.point_attributes  # of the leading LAS points, read already
        n = 0 if attributes is None else len(attributes.classification)
        if attributes is None or not cloud[:n].all() or cloud[n:].any():
            clouds = [(r, k) for r, k in point_rows if r.type == CLOUD_TYPE]
            _, attributes = _point_attributes(clouds)
        if attributes is not None and len(attributes.classification) != int(cloud.sum()):
            attributes = None  # some cloud has no LAS records: colours and positions only
        parts.append(
            write_pnts(
                geometry.center,
                geometry.point_positions[cloud],
                geometry.point_colors[cloud],
                attributes,
            )
        )
    return parts[0] if len(parts) == 1 else write_cmpt(parts)


def _columns(rows: Sequence[Any], schema: PropertySchema) -> dict[str, list[Any]]:
    """The objects' values by property name, column by column (CIM's own, then their
    attributes, all parsed at once).

    Raises:
        SchemaMismatch: an attribute the schema does not know.
    """
    attributes = orjson.loads("[" + ",".join([r.attributes for r in rows]) + "]")
    own = {
        "id": [r.source_id for r in rows],
        "cim_id": [r.id for r in rows],
        "type": [r.type for r in rows],
        "height": [r.height for r in rows],
    }
    return schema.columns(own, attributes)


# of one city, or of a city and its design scheme (dataset ids are unique across cities)
_IMAGES = text("""
    SELECT dataset_id, idx, mime, data FROM texture_image
    WHERE city_code = ANY(:cities) AND dataset_id = ANY(:datasets) AND idx = ANY(:indices)""")


@dataclass
class _Meshes:
    """The meshed rows of a tile joined: absolute vertices, triangles, per-vertex colours and
    feature ids, and for textured triangles their (u, v) and texture (dataset, index)."""

    vertices: NDArray[np.float64]
    triangles: NDArray[np.int64]
    colours: NDArray[np.uint8]
    feature_ids: NDArray[np.float32]
    uvs: NDArray[np.float32]
    texture: NDArray[np.int64]  # per triangle: dataset_id << 32 | index, or -1


def _meshes(rows: Sequence[Any]) -> _Meshes:
    """The meshed rows of a tile, joined (per row only its bytes are collected: everything per
    vertex or triangle is one NumPy operation over the tile)."""
    meshed = [n for n, r in enumerate(rows) if r.mesh_vertices is not None]
    if not meshed:
        return _Meshes(
            np.zeros((0, 3)),
            np.zeros((0, 3), np.int64),
            np.zeros((0, 4), np.uint8),
            np.zeros(0, np.float32),
            np.zeros((0, 2), np.float32),
            np.zeros(0, np.int64),
        )
    mine = [rows[n] for n in meshed]
    vertex_bytes = [r.mesh_vertices for r in mine]
    triangle_bytes = [r.mesh_triangles for r in mine]
    verts = np.frombuffer(b"".join(vertex_bytes), dtype="<f4").reshape(-1, 3)
    tris = np.frombuffer(b"".join(triangle_bytes), dtype="<u4").reshape(-1, 3)
    n_verts = np.fromiter(map(len, vertex_bytes), np.int64, len(mine)) // 12
    n_tris = np.fromiter(map(len, triangle_bytes), np.int64, len(mine)) // 12
    origin = attrgetter("origin_x", "origin_y", "origin_z")
    origins = np.fromiter(chain.from_iterable(map(origin, mine)), np.float64, 3 * len(mine))
    origins = origins.reshape(-1, 3)
    absolute = np.repeat(origins, n_verts, axis=0) + verts
    base = starts_of(n_verts)
    triangles = tris.astype(np.int64) + np.repeat(base, n_tris)[:, None]
    colour_bytes = [r.mesh_colours for r in mine]
    if all(c is not None for c in colour_bytes):
        tri_colours = np.frombuffer(b"".join(colour_bytes), dtype="u1").reshape(-1, 3)
    else:
        tri_colours = np.repeat(np.array([DEFAULT_COLOUR], dtype=np.uint8), len(tris), axis=0)
        starts = starts_of(n_tris)
        for k, c in enumerate(colour_bytes):
            if c is not None:
                tri_colours[starts[k] : starts[k] + n_tris[k]] = np.frombuffer(c, "u1").reshape(
                    -1, 3
                )
    # each vertex takes the colour of its triangles, as whole RGBA words (rows of a 2-D array
    # are much slower to scatter); vertices of no triangle stay white
    colours = np.full((len(verts), 4), 255, dtype=np.uint8)
    words = colours.view("<u4").reshape(-1)
    rgba = np.column_stack((tri_colours, np.full(len(tri_colours), 255, np.uint8)))
    tri_words = rgba.view("<u4").reshape(-1)
    for k in range(3):
        words[triangles[:, k]] = tri_words
    fids = np.repeat(np.array(meshed, dtype=np.float32), n_verts)
    uvs = np.zeros((len(verts), 2), dtype=np.float32)
    texture = np.full(len(triangles), -1, dtype=np.int64)
    textured = [
        k for k, r in enumerate(mine) if r.mesh_uvs is not None and r.mesh_textures is not None
    ]
    if textured:
        tri_starts = starts_of(n_tris)
        for k in textured:
            r, v0, t0 = mine[k], int(base[k]), int(tri_starts[k])
            uvs[v0 : v0 + int(n_verts[k])] = np.frombuffer(r.mesh_uvs, dtype="<f4").reshape(-1, 2)
            index = np.frombuffer(r.mesh_textures, dtype="<i4").astype(np.int64)
            texture[t0 : t0 + int(n_tris[k])] = np.where(
                index >= 0, (int(r.dataset_id) << 32) | index, -1
            )
    return _Meshes(absolute, triangles, colours, fids, uvs, texture)


def _images(
    conn: Connection, city: str | tuple[str, str], keys: NDArray[np.int64]
) -> dict[int, tuple[str, bytes]]:
    """The stored images of these texture keys (dataset_id << 32 | index), of a city (or of a
    city and its design scheme)."""
    if not len(keys):
        return {}
    datasets = sorted({int(k) >> 32 for k in keys})
    indices = sorted({int(k) & 0xFFFFFFFF for k in keys})
    cities = [city] if isinstance(city, str) else list(city)
    rows = conn.execute(_IMAGES, {"cities": cities, "datasets": datasets, "indices": indices})
    wanted = {int(k) for k in keys}
    found = {(int(r.dataset_id) << 32) | int(r.idx): (r.mime, r.data) for r in rows}
    return {k: v for k, v in found.items() if k in wanted}


def _subset(
    triangles: NDArray[np.int64], n_vertices: int
) -> tuple[NDArray[np.int64] | slice, NDArray[np.int64]]:
    """The vertices some triangles use (to index the vertex arrays with: every one is a slice,
    which copies nothing), and those triangles renumbered over them (a mask and a running
    count, not a sort: this runs over every vertex of every tile)."""
    mask = np.zeros(n_vertices, dtype=bool)
    mask[triangles] = True
    if mask.all():
        return slice(None), triangles
    used = np.flatnonzero(mask)
    remap = np.cumsum(mask) - 1
    return used, remap[triangles]


def _textured_parts(
    m: _Meshes, positions: NDArray[np.float32], normals: NDArray[np.float32], images: dict[int, Any]
) -> tuple[list[TexturedPart], NDArray[np.bool_]]:
    """One part per texture image that is stored, and which triangles they took (`positions`:
    the vertices from the tile's centre)."""
    parts: list[TexturedPart] = []
    taken = np.zeros(len(m.triangles), dtype=bool)
    for key, (mime, data) in images.items():
        mine = m.texture == key
        used, tris = _subset(m.triangles[mine], len(m.vertices))
        uv = m.uvs[used]
        parts.append(
            TexturedPart(
                image=data,
                mime=mime,
                positions=positions[used],
                normals=normals[used],
                uvs=np.column_stack((uv[:, 0], 1.0 - uv[:, 1])).astype(np.float32),
                feature_ids=m.feature_ids[used],
                indices=tris.astype(np.uint32).reshape(-1),
            )
        )
        taken |= mine
    return parts, taken


def _vertex_normals(positions: NDArray[np.float32], tris: NDArray[np.int64]) -> NDArray[np.float32]:
    """Unit normal of each vertex from its triangles (vertices are not shared between
    surfaces, so this is the flat normal of its surface). Column by column: NumPy's cross, norm
    and row indexing cost more than the arithmetic on a tile's few thousand vertices."""
    n = len(positions)
    x, y, z = (positions[:, axis].astype(np.float64) for axis in range(3))
    if len(tris):
        i, j, k = tris[:, 0], tris[:, 1], tris[:, 2]
        ux, uy, uz = x[j] - x[i], y[j] - y[i], z[j] - z[i]
        vx, vy, vz = x[k] - x[i], y[k] - y[i], z[k] - z[i]
        corners = tris.T.reshape(-1)  # every corner of every triangle, corner by corner
        # sums by vertex: bincount is many times faster than add.at
        sums: list[NDArray[Any]] = [
            np.bincount(corners, np.tile(face, 3), minlength=n)
            for face in (uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx)
        ]
    else:
        sums = [np.zeros(n), np.zeros(n), np.zeros(n)]
    normals = np.column_stack(sums)
    length = np.sqrt(sums[0] * sums[0] + sums[1] * sums[1] + sums[2] * sums[2])
    bad = length < 1e-12
    normals[bad] = (0.0, 0.0, 1.0)
    length[bad] = 1.0
    return (normals / length[:, None]).astype(np.float32)


def tile_content(
    conn: Connection,
    city: str,
    level: int,
    x: int,
    y: int,
    schema: PropertySchema,
    fmt: str = "glb",
    meshopt: bool = True,
) -> bytes | None:
    """The content of a tile (GLB for 3D Tiles 1.1, B3DM for 1.0), or None when it is empty;
    its property table follows `schema`, the city's (tiles.schema), and `meshopt` compresses
    GLB content with EXT_meshopt_compression.

    Raises:
        SchemaMismatch: an object holds a value the schema has no room for.
    """
    rows = _fetch(conn, _SQL, {"city": city, "level": level, "x": x, "y": y})
    return _content(conn, city, rows, schema, fmt, meshopt)


def scenario_tile_content(
    conn: Connection,
    city: str,
    scheme: str,
    key: tuple[int, int, int],
    schema: PropertySchema,
    fmt: str = "glb",
    meshopt: bool = True,
) -> bytes | None:
    """The content of a tile of a city as its design scheme `scheme` (`{city}~{scenario}`) has
    it (cim.db.scenarios): the baseline's objects it keeps, then the scheme's; None when empty.

    Raises:
        SchemaMismatch: an object holds a value the schema has no room for.
    """
    level, x, y = key
    params = {"city": city, "scheme": scheme, "level": level, "x": x, "y": y}
    rows = _fetch(conn, _SQL_SCENARIO, params)
    return _content(conn, (city, scheme), rows, schema, fmt, meshopt)


def tile_rows(conn: Connection, city: str, keys: Sequence[tuple[int, int, int]]) -> list[Any]:
    """The object rows of many tiles, read in one query (seeding: a round trip per tile costs
    as much as making a small one), in tile order and then by id, for `rows_contents`."""
    params = {
        "city": city,
        "levels": [k[0] for k in keys],
        "xs": [k[1] for k in keys],
        "ys": [k[2] for k in keys],
    }
    rows = _fetch(conn, _SQL_MANY, params)
    rows.sort(key=lambda r: (r.tile_level, r.tile_x, r.tile_y, r.id))
    return rows


def rows_contents(
    conn: Connection,
    city: str,
    rows: Sequence[Any],
    schema: PropertySchema,
    fmt: str = "glb",
    meshopt: bool = True,
) -> Iterator[tuple[tuple[int, int, int], bytes]]:
    """The contents of the tiles of `rows` (from `tile_rows`), as `tile_content` makes each;
    `conn` reads their texture images. Empty tiles are left out.

    Raises:
        SchemaMismatch: an object holds a value the schema has no room for.
    """
    for key, group in groupby(rows, key=lambda r: (r.tile_level, r.tile_x, r.tile_y)):
        content = _content(conn, city, list(group), schema, fmt, meshopt)
        if content is not None:
            yield key, content


def part_content(
    conn: Connection,
    city: str,
    ids: Sequence[int],
    schema: PropertySchema,
    meshopt: bool = True,
    fmt: str = "glb",
) -> bytes | None:
    """The content of these objects (a part of over-full tiles, tiles.split; GLB, or for
    `fmt` b3dm the 3D Tiles 1.0 content by the tiles' rule), or None when none of them is left.

    Raises:
        SchemaMismatch: an object holds a value the schema has no room for.
    """
    rows = _fetch(conn, _SQL_IDS, {"city": city, "ids": list(ids)})
    return _content(conn, city, rows, schema, fmt, meshopt)


def part_contents(
    conn: Connection,
    city: str,
    parts: Sequence[tuple[tuple[int, int, int], Sequence[int]]],
    schema: PropertySchema,
    meshopt: bool = True,
    fmt: str = "glb",
) -> Iterator[tuple[tuple[int, int, int], bytes | None]]:
    """The contents of many parts read in one query (seeding: a query per part cost more than
    making it), each as `part_content` makes it; the caller keeps a batch to tens of MB.

    Raises:
        SchemaMismatch: an object holds a value the schema has no room for.
    """
    wanted = [int(i) for _, ids in parts for i in ids]
    rows = {r.id: r for r in _fetch(conn, _SQL_PARTS, {"city": city, "ids": wanted})}
    for key, ids in parts:
        mine = [rows.pop(i) for i in sorted(int(i) for i in ids) if i in rows]
        yield key, _content(conn, city, mine, schema, fmt, meshopt)


def _content(
    conn: Connection,
    city: str | tuple[str, str],
    rows: Sequence[Any],
    schema: PropertySchema,
    fmt: str,
    meshopt: bool,
) -> bytes | None:
    """One content of these object rows (in id order)."""
    if not rows:
        return None
    m = _meshes(rows)
    with_points = [(n, _points(r.points)) for n, r in enumerate(rows) if r.points is not None]
    with_points.sort(key=lambda item: not _las(rows[item[0]]))  # LAS points first
    # Earth-centred in one NumPy pass over the tile (PostGIS's ST_Transform, point by point,
    # was most of a point tile's time); the exact conversion, as PostGIS's within 1 mm
    point_abs = (
        lonlath_to_ecef(np.concatenate([p for _, p in with_points]))
        if with_points
        else np.zeros((0, 3))
    )
    ends = np.cumsum([len(p) for _, p in with_points], dtype=np.int64)
    with_points = [
        (n, point_abs[b - len(p) : b]) for (n, p), b in zip(with_points, ends, strict=True)
    ]
    point_fids = (
        np.concatenate([np.full(len(p), n, np.float32) for n, p in with_points])
        if with_points
        else np.zeros(0, np.float32)
    )
    point_colours, point_attributes = _point_attributes([(rows[n], len(p)) for n, p in with_points])
    line_parts = [(n, *_lines(r.lines)) for n, r in enumerate(rows) if r.lines is not None]
    line_abs = np.zeros((0, 3))
    line_idx = np.zeros((0, 2), np.int64)
    line_fids = np.zeros(0, np.float32)
    if line_parts:
        sizes = [len(p) for _, p, _ in line_parts]
        line_abs = np.concatenate([p for _, p, _ in line_parts])
        bases = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        line_idx = np.concatenate([q + b for (_, _, q), b in zip(line_parts, bases, strict=True)])
        line_fids = np.repeat(np.array([n for n, _, _ in line_parts], np.float32), sizes)
    everything = np.concatenate((m.vertices, point_abs, line_abs))
    center = np.add(*column_bounds(everything)) / 2 if len(everything) else np.zeros(3)
    positions = (m.vertices - center).astype(np.float32)
    normals = _vertex_normals(positions, m.triangles)
    textured, taken = _textured_parts(
        m, positions, normals, _images(conn, city, np.unique(m.texture[m.texture >= 0]))
    )
    textured = within_budget(pack(textured))  # small ones in one atlas, all within budget
    triangles = m.triangles[~taken] if taken.any() else m.triangles
    used: NDArray[np.int64] | slice
    if meshopt and fmt != "b3dm":  # the vertices in the codec's order, gathered once
        indices, used = first_use(triangles) if len(triangles) else (_NO_INDICES, _NO_VERTICES)
    else:
        used, plain = _subset(triangles, len(m.vertices))
        indices = plain.astype(np.uint32).reshape(-1)
    geometry = Geometry(
        center=center,
        positions=positions[used],
        normals=normals[used],
        colors=m.colours[used],
        feature_ids=m.feature_ids[used],
        indices=indices,
        textured=textured,
        point_positions=(point_abs - center).astype(np.float32),
        point_colors=point_colours,
        point_feature_ids=point_fids,
        point_attributes=point_attributes,
        line_positions=(line_abs - center).astype(np.float32),
        line_indices=line_idx.astype(np.uint32).reshape(-1),
        line_feature_ids=line_fids,
    )
    columns = _columns(rows, schema)
    if fmt == "b3dm":
        point_rows = [(rows[n], len(p)) for n, p in with_points]
        return _content_1_0(geometry, rows, point_rows, columns, schema)
    metadata, views = column_table(columns, len(rows), schema)
    if meshopt:
        return compress(write_glb(reorder(geometry, plain=False), len(rows), metadata, views))
    return write_glb(geometry, len(rows), metadata, views)
