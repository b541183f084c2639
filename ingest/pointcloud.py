"""Point clouds (LAS 1.0-1.4, and LAZ through lazrs), read with laspy in chunks.

Points are grouped, chunk by chunk, into square cells (`--cell-size`, in the CRS's units), and a
thinned share of them into larger overview cells (the level of detail: refine ADD, each
point in one object only, the object's geometric error the spacing a view misses without it).
Each group is one `PointCloud` city object whose geometry is a MultiPoint, with each point's whole
LAS record (position as stored, intensity, return numbers, classification, scan angle, GPS time,
colour, extra bytes) packed beside it, so nothing of the file is lost. The object's attributes
count its points per classification and give its intensity range. The CRS comes from the file's
header (WKT or GeoTIFF keys), else `--crs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.model import ReadOptions, SourceGeometry, SourceObject

CHUNK = 500_000
# level of detail: above the cells, OVERVIEWS levels of cells 4, 16, 64 times as large, each
# holding the first point of every column (a square seen from above) of side cell size x SPACING
# (x 4 per level); the points they take are not in the cells (3D Tiles refine ADD), so every
# point is stored exactly once
OVERVIEWS = 3
SPACING = 0.02
SUFFIXES = {".las", ".laz"}


def sniff(path: Path, head: bytes) -> bool:
    """LAS and LAZ files start with the signature LASF."""
    return head.startswith(b"LASF")


class PointCloudReader:
    """A LAS/LAZ file, read a chunk at a time."""

    format = "LAS"
    axis_order = "xy"

    def __init__(self, path: Path, options: ReadOptions | None = None) -> None:
        import laspy

        self.path = str(path)
        self._path = path
        self.options = options or ReadOptions()
        if self.options.cell_size <= 0:
            raise IngestError(path, "--cell-size must be above 0")
        try:
            with laspy.open(str(path)) as las:
                header = las.header
                crs = header.parse_crs()
        except Exception as exc:  # laspy raises its own kinds on a broken file
            raise IngestError(path, f"not a readable LAS/LAZ file ({exc})") from None
        self.format_version: str | None = f"{header.version.major}.{header.version.minor}"
        code = crs.to_epsg() if crs is not None else None
        self.crs_name: str | None = (
            f"EPSG:{code}" if code else (crs.to_wkt() if crs is not None else None)
        )
        self.points = int(header.point_count)
        self.metadata: dict[str, Any] = {
            "point_count": self.points,
            "point_format": int(header.point_format.id),
            "scales": [float(v) for v in header.scales],
            "offsets": [float(v) for v in header.offsets],
            "mins": [float(v) for v in header.mins],
            "maxs": [float(v) for v in header.maxs],
            "cell_size": self.options.cell_size,
        }
        self._origin = (float(header.mins[0]), float(header.mins[1]))
        self.appearance: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.total_objects: int | None = None

    def objects(self) -> Iterator[SourceObject]:
        """One PointCloud object per cell of each chunk."""
        import laspy

        stem = Path(self.path).stem
        read = 0
        try:
            with laspy.open(self.path) as las:
                for n, chunk in enumerate(las.chunk_iterator(CHUNK)):
                    records = chunk.array
                    xyz = np.column_stack(
                        (np.asarray(chunk.x), np.asarray(chunk.y), np.asarray(chunk.z))
                    ).astype(np.float64)
                    read += len(records)
                    yield from self._cells(stem, n, xyz, records, chunk)
        except IngestError:
            raise
        except Exception as exc:
            raise IngestError(self._path, f"reading points from {read}: {exc}") from None
        if read != self.points:
            raise IngestError(
                self._path, f"the header announces {self.points} points, the file holds {read}"
            )

    def _spacing(self, level: int) -> float:
        """The voxel side of an overview level (level 1 is the finest)."""
        return self.options.cell_size * SPACING * 4.0 ** (level - 1)

    def _levels(self, xyz: NDArray[np.float64]) -> NDArray[np.int8]:
        """Each point's level: k for the first point of a chunk in each column (a square of
        the level's spacing, seen from above) of level k — the levels nest: a level-k point is
        also the first in its column of every finer level — and 0 for the others, which stay
        in the cells."""
        level = np.zeros(len(xyz), dtype=np.int8)
        chosen = np.arange(len(xyz))
        low = xyz[:, :2].min(axis=0) if len(xyz) else np.zeros(2)
        for k in range(1, OVERVIEWS + 1):
            v = np.floor((xyz[chosen, :2] - low) / self._spacing(k)).astype(np.int64)
            key = (v[:, 0] << 32) | (v[:, 1] & 0xFFFFFFFF)
            _, first = np.unique(key, return_index=True)
            chosen = chosen[np.sort(first)]
            level[chosen] = k
        return level

    def _cells(
        self, stem: str, n: int, xyz: Any, records: Any, chunk: Any
    ) -> Iterator[SourceObject]:
        level = self._levels(xyz)
        classes = np.asarray(chunk.classification)
        intensity = np.asarray(chunk.intensity)
        for k in range(OVERVIEWS + 1):
            pick = np.flatnonzero(level == k)
            if len(pick):
                yield from self._grouped(
                    stem, n, k, xyz[pick], records[pick], classes[pick], intensity[pick]
                )

    def _grouped(
        self,
        stem: str,
        n: int,
        k: int,
        xyz: NDArray[np.float64],
        records: Any,
        classes: NDArray[Any],
        intensity: NDArray[Any],
    ) -> Iterator[SourceObject]:
        """The points of one level grouped in its cells (the cell size times 4 per level)."""
        size = self.options.cell_size * 4.0**k
        i = np.floor((xyz[:, 0] - self._origin[0]) / size).astype(np.int64)
        j = np.floor((xyz[:, 1] - self._origin[1]) / size).astype(np.int64)
        order = np.lexsort((j, i))
        i, j = i[order], j[order]
        starts = np.flatnonzero(np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])])
        ends = np.r_[starts[1:], len(order)]
        # gathered once, in cell order: each cell is then a slice, not another gather
        xyz = xyz[order]
        records = records[order]
        classes = classes[order]
        intensity = intensity[order]
        layout = {"format": "LAS", "dtype": _descr(records.dtype)}
        # without this object a view shows the next coarser level's spacing
        detail = self._spacing(k + 1)
        name = f"{stem}.{n}" + (f".L{k}" if k else "")
        extra = {"overview_level": k, "spacing": self._spacing(k)} if k else {}
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            pick = slice(a, b)
            values, counts = np.unique(classes[pick], return_counts=True)
            by_class = {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}
            geometry = SourceGeometry(
                type="MultiPoint",
                lod=None,
                kind="point",
                vertices=xyz[pick],
                indices=range(b - a),
                ring_sizes=[],
                polygon_rings=[],
                structure={"type": "MultiPoint", "source": "LAS", "point_data": layout},
                point_data=records[pick].tobytes(),
            )
            yield SourceObject(
                id=f"{name}.{int(i[a])}_{int(j[a])}",
                type="PointCloud",
                attributes={
                    "points": b - a,
                    "classification": by_class,
                    "intensity_min": int(intensity[pick].min()),
                    "intensity_max": int(intensity[pick].max()),
                    **extra,
                },
                parents=[],
                children=[],
                geometries=[geometry],
                detail=detail,
            )

    def close(self) -> None:
        """Nothing to release: each pass opens and closes the file."""


def _descr(dtype: Any) -> list[list[str]]:
    """A numpy record layout as JSON: [[name, type], ...] (LAS sub-byte fields stay packed)."""
    return [[name, str(dtype.fields[name][0].str)] for name in dtype.names]
