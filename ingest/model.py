"""What a reader yields: city objects in their source CRS, format-neutral."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

GeometryKind = Literal["surface", "line", "point"]


@dataclass(slots=True)
class SourceGeometry:
    """One geometry of a city object (one LoD), vertices in the source CRS.

    `indices` index `vertices` (the array the file's boundaries refer to: a file-wide array, a
    feature's own, or a placed template's); they are checked later, for a whole batch at once.
    A reader whose geometries own their vertices, in order, gives `range(len(vertices))`.
    Surfaces are flattened in boundary order: `ring_sizes` gives each ring's vertex count,
    `polygon_rings` each surface's ring count (exterior first). Lines use `ring_sizes` per line;
    points use `indices` alone. `structure` keeps what is needed to rebuild the source geometry:
    its type, LoD, nesting shape, semantics, materials, textures. `uvs` and `polygon_textures`
    are the drawable part of the textures: one theme, resolved to vertices and polygons.
    """

    type: str
    lod: str | None
    kind: GeometryKind
    vertices: NDArray[np.float64]
    indices: Sequence[Any]
    ring_sizes: list[int]
    polygon_rings: list[int]
    structure: dict[str, Any]
    surface_semantics: list[str | None] | None = None
    point_data: bytes | None = None  # points: each point's source record, packed (a LAS record)
    # textured surfaces: (u, v) per referenced vertex (NaN where none), and per polygon the index
    # of its texture in the reader's appearance["textures"] (-1 for none)
    uvs: NDArray[np.float64] | None = None
    polygon_textures: list[int] | None = None


@dataclass(slots=True)
class SourceObject:
    """A city object as read from a file."""

    id: str
    type: str
    attributes: dict[str, Any]
    parents: list[str]
    children: list[str]
    geometries: list[SourceGeometry]
    extra: dict[str, Any] = field(default_factory=dict)
    # what a view misses without this object, in metres, when it is not its size: the point
    # spacing of a point-cloud level (3D Tiles geometric error)
    detail: float | None = None


@dataclass(frozen=True)
class ReadOptions:
    """What some formats need to be told: how footprints are extruded, where a mesh is."""

    height_attr: str | None = None
    floors_attr: str | None = None
    storey_height: float = 3.0
    base_attr: str | None = None
    layer: str | None = None
    origin: tuple[float, float, float] | None = None  # mesh: lon, lat, height of its (0, 0, 0)
    offset: tuple[float, float, float] | None = None  # mesh: added to coordinates, in --crs
    up: str | None = None  # mesh: "y" or "z" (default: y for glTF, z otherwise)
    object_type: str = "GenericCityObject"  # mesh: the type of the objects it becomes
    axis_order: str | None = None  # GML: "east-first" or "north-first" instead of deciding
    cell_size: float = 50.0  # point clouds: the side of the cells points are grouped in (CRS units)


class Reader(Protocol):
    """A city-model file opened for reading; `objects()` streams its city objects."""

    path: str
    format: str
    format_version: str | None
    crs_name: str | None
    metadata: dict[str, Any]  # the file's root members other than objects and vertices
    appearance: dict[str, Any]
    warnings: list[str]
    total_objects: int | None
    # "xy": easting/longitude first (CityJSON, GeoJSON); "crs": the CRS definition's axis order
    # (GML), so latitude first for EPSG:4326 or EPSG:6697. Readers without it are "xy".
    axis_order: str

    def objects(self) -> Iterator[SourceObject]:
        """Yield every city object of the file, one at a time."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...
