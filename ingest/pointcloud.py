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

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.model import ReadOptions, SourceGeometry, SourceObject

CHUNK = 500_000
# level of detail: above the cells, OVERVIEWS levels of cells 4, 16, 64 times as large, each
# holding one point of every column (a square seen from above) of side cell size x SPACING
# (x 4 per level); the points they take are not in the cells (3D Tiles refine ADD), so every
# point is stored exactly once
OVERVIEWS = 3
SPACING = 0.02
GRID_LIMIT = 8_000_000  # columns of a level kept over the whole file (40 MB at most)
SUFFIXES = {".las", ".laz"}
# the header's size by version (1.0-1.2, 1.3, 1.4), variable-length record headers (VLR, EVLR)
HEADER_SIZES = {0: 227, 1: 227, 2: 227, 3: 235, 4: 375}
VLR_HEADER, EVLR_HEADER = 54, 60
MAX_RECORDS = 10_000  # variable-length records of each kind (files hold a handful)
Int = NDArray[np.int64]


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
        check_header(path)
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
        self._has_rgb = {"red", "green", "blue"} <= set(header.point_format.dimension_names)
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
        self._low = np.array(header.mins[:2], dtype=np.float64)
        self._high = np.array(header.maxs[:2], dtype=np.float64)
        self._columns: list[_Columns] | None = None
        self._rgb: int | None = None  # bits of the file's colours
        # cells, and their points, whose colour fields are 0 0 0 on every point (drawn by class)
        self._dark = [0, 0]
        self._cell_count = 0
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
                    read += len(records)
                    yield from self._cells(stem, n, records, chunk)
        except IngestError:
            raise
        except Exception as exc:
            raise IngestError(self._path, f"reading points from {read}: {exc}") from None
        if read != self.points:
            raise IngestError(
                self._path, f"the header announces {self.points} points, the file holds {read}"
            )
        self.warnings.extend(self._colour_warnings())
        if any(c.loose for c in self._columns or []):
            self.warnings.append(
                "the LAS header's bounds do not hold all points: the overview levels were "
                "thinned chunk by chunk (denser than planned where chunks overlap)"
            )

    def _count_dark(self, chunk: Any, order: Any, starts: Any, ends: Any) -> None:
        """Count the cells (and their points) whose points all have RGB 0 0 0."""
        self._cell_count += len(starts)
        if not self._has_rgb or not len(starts):
            return
        lit = (np.asarray(chunk.red) | np.asarray(chunk.green) | np.asarray(chunk.blue))[order]
        dark = np.maximum.reduceat(lit, starts) == 0
        self._dark[0] += int(dark.sum())
        self._dark[1] += int((ends - starts)[dark].sum())

    def _rgb_bits(self, chunk: Any) -> dict[str, int]:
        """Whether the file's colours use 16 bits, as LAS says, or 8 (many files store 8-bit
        values as they are): decided once, on the first chunk, for the whole file."""
        names = set(chunk.array.dtype.names or ())
        if not {"red", "green", "blue"} <= names:
            return {}
        if self._rgb is None:
            top = max(int(chunk.array[c].max(initial=0)) for c in ("red", "green", "blue"))
            self._rgb = 16 if top > 255 else 8
        return {"rgb_bits": self._rgb}

    def _colour_warnings(self) -> list[str]:
        """What the ingest report says about points drawn in class colours (tiles/points.py:
        a format without RGB, or a cell whose points all have RGB 0 0 0)."""
        point_format = self.metadata["point_format"]
        if not self._has_rgb:
            return [
                f"LAS point format {point_format} has no colour: the points are drawn in the "
                "colours of their ASPRS class"
            ]
        cells, points = self._dark
        if not cells:
            return []
        if cells == self._cell_count:
            what = f"every point's RGB is 0 0 0 ({points} points)"
        else:
            what = (
                f"{cells} of {self._cell_count} cells ({points} points) have RGB 0 0 0 on "
                "every point"
            )
        return [
            f"LAS point format {point_format} has colour fields, but {what}: taken as no "
            "colour, those points are drawn in the colours of their ASPRS class"
        ]

    def _spacing(self, level: int) -> float:
        """The column side of an overview level (level 1 is the finest)."""
        return self.options.cell_size * SPACING * 4.0 ** (level - 1)

    def _levels(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int8]:
        """Each point's level: k when it is the one point of its column (a square of the
        level's spacing, seen from above) at level k — the levels nest: a level-k point is
        also its column's point at every finer level — and 0 for the others, which stay in
        the cells."""
        if self._columns is None:
            self._columns = [
                _Columns(self._low, self._high, self._spacing(k)) for k in range(1, OVERVIEWS + 1)
            ]
        level = np.zeros(len(x), dtype=np.int8)
        chosen: NDArray[np.int64] | None = None  # None: every point of the chunk
        for k, columns in enumerate(self._columns, 1):
            if chosen is None:
                chosen = columns.pick(x, y)
            else:
                chosen = chosen[columns.pick(x[chosen], y[chosen])]
            level[chosen] = k
        return level

    def _cells(self, stem: str, n: int, records: Any, chunk: Any) -> Iterator[SourceObject]:
        """The chunk's points grouped by level and cell (cells 4 times larger per level): one
        sort and one gather for the whole chunk, each object then a slice of it."""
        x, y, z = (np.asarray(v, dtype=np.float64) for v in (chunk.x, chunk.y, chunk.z))
        level = self._levels(x, y)
        side = self.options.cell_size * np.power(4.0, level)
        i = np.floor((x - self._origin[0]) / side).astype(np.int64)
        j = np.floor((y - self._origin[1]) / side).astype(np.int64)
        order, starts = _group(level, i & 0xFFFFFFF, j & 0xFFFFFFF)
        ends = np.r_[starts[1:], len(order)]
        layout = {"format": "LAS", "dtype": _descr(records.dtype), **self._rgb_bits(chunk)}
        # gathered column by column: a gather of (n, 3) rows is ~6x slower
        xyz = np.column_stack((x[order], y[order], z[order]))
        # gathered as opaque records of the same size (a structured gather is ~10x slower)
        records = np.take(np.ascontiguousarray(records).view(f"V{records.dtype.itemsize}"), order)
        first = order[starts]  # each cell's first point, in the file's order
        level, i, j = level[first], i[first], j[first]
        self._count_dark(chunk, order, starts, ends)
        classes = np.asarray(chunk.classification)[order].astype(np.int64)
        intensity = np.asarray(chunk.intensity)[order]
        # per cell: points per class, intensity range
        cell = np.repeat(np.arange(len(starts)), ends - starts)
        per_class = np.bincount(cell * 256 + classes, minlength=len(starts) * 256)
        cells, kinds = np.nonzero(per_class.reshape(-1, 256))
        counts = per_class[cells * 256 + kinds]
        by_class: list[dict[str, int]] = [{} for _ in starts]
        for c, kind, count in zip(cells.tolist(), kinds.tolist(), counts.tolist(), strict=True):
            by_class[c][str(kind)] = count
        low = np.minimum.reduceat(intensity, starts).tolist() if len(starts) else []
        high = np.maximum.reduceat(intensity, starts).tolist() if len(starts) else []
        for c, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            k = int(level[c])
            geometry = SourceGeometry(
                type="MultiPoint",
                lod=None,
                kind="point",
                vertices=xyz[a:b],
                indices=range(b - a),
                ring_sizes=[],
                polygon_rings=[],
                structure={"type": "MultiPoint", "source": "LAS", "point_data": layout},
                point_data=records[a:b].tobytes(),
            )
            extra = {"overview_level": k, "spacing": self._spacing(k)} if k else {}
            yield SourceObject(
                id=f"{stem}.{n}" + (f".L{k}" if k else "") + f".{int(i[c])}_{int(j[c])}",
                type="PointCloud",
                attributes={
                    "points": b - a,
                    "classification": by_class[c],
                    "intensity_min": int(low[c]),
                    "intensity_max": int(high[c]),
                    **extra,
                },
                parents=[],
                children=[],
                geometries=[geometry],
                # without this object a view shows the next coarser level's spacing
                detail=self._spacing(k + 1),
            )

    def close(self) -> None:
        """Nothing to release: each pass opens and closes the file."""


def check_header(path: Path) -> None:
    """Hold every count, length and offset of a LAS/LAZ header to the file's size, before laspy
    reads what they announce (a 30 KB file claiming 4,294,967,295 variable-length records made
    it run for minutes while its memory grew to gigabytes). Fields are named as in the LAS
    specification.

    Raises:
        IngestError: naming the field, its value and what the file can hold.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZES[4])
        if len(head) < HEADER_SIZES[0] or not head.startswith(b"LASF"):
            raise IngestError(path, f"{size:,} bytes: too short for a LAS header (227 bytes)")
        minor = head[25]
        header_size, offset, vlrs, format_id, record_length, count = struct.unpack(
            "<HIIBHI", head[94:111]
        )
        least = HEADER_SIZES.get(minor, HEADER_SIZES[4])
        if not least <= header_size <= size:
            raise _refused(
                path,
                "Header Size",
                header_size,
                f"a LAS 1.{minor} header takes {least} bytes (the file has {size:,})",
            )
        evlr_start = evlrs = 0
        if minor >= 4:
            evlr_start, evlrs, count = struct.unpack("<QIQ", head[235:255])
        if not header_size <= offset <= size:
            raise _refused(
                path,
                "Offset to Point Data",
                offset,
                f"not between the end of the header "
                f"({header_size:,}) and the end of the file ({size:,} bytes)",
            )
        room = (offset - header_size) // VLR_HEADER
        if vlrs > min(room, MAX_RECORDS):
            raise _refused(
                path,
                "Number of Variable Length Records",
                vlrs,
                f"the "
                f"{offset - header_size:,} bytes between the header and the points hold at most "
                f"{room:,} (and a file may have {MAX_RECORDS:,})",
            )
        _check_records(path, f, header_size, vlrs, offset, extended=False)
        if evlrs and not offset <= evlr_start <= size:
            raise _refused(
                path,
                "Start of First Extended Variable Length Record",
                evlr_start,
                f"not "
                f"between the start of the points ({offset:,}) and the end of the file "
                f"({size:,} bytes)",
            )
        end = evlr_start if evlrs else size  # where the points must end
        compressed = format_id & 0x80 and not format_id & 0x40  # LAZ
        if compressed and offset + 8 > end:
            raise _refused(path, "Offset to Point Data", offset, "no room for the LAZ chunk table")
        if not compressed and count * record_length > end - offset:
            raise _refused(
                path,
                "Number of Point Records",
                count,
                f"{count:,} records of {record_length} "
                f"bytes (Point Data Record Length) take {count * record_length:,} bytes; the "
                f"file holds {end - offset:,} bytes of points",
            )
        room = (size - evlr_start) // EVLR_HEADER if evlrs else 0
        if evlrs > min(room, MAX_RECORDS):
            raise _refused(
                path,
                "Number of Extended Variable Length Records",
                evlrs,
                f"the "
                f"{size - evlr_start:,} bytes from the first one hold at most {room:,} (and a "
                f"file may have {MAX_RECORDS:,})",
            )
        _check_records(path, f, evlr_start, evlrs, size, extended=True)


def _check_records(
    path: Path, f: BinaryIO, start: int, count: int, end: int, extended: bool
) -> None:
    """Walk `count` (extended) variable-length records from byte `start`: each must end by
    byte `end` (the points, or the end of the file).

    Raises:
        IngestError: a record that does not.
    """
    header = EVLR_HEADER if extended else VLR_HEADER
    kind = "extended variable length record" if extended else "variable length record"
    at = start
    for n in range(count):
        f.seek(at)
        record = f.read(header)
        if len(record) < header:
            raise IngestError(path, f"the LAS {kind} {n} starts at byte {at:,}, past the end")
        if extended:
            (length,) = struct.unpack("<Q", record[20:28])
        else:
            (length,) = struct.unpack("<H", record[20:22])
        at += header + length
        if at > end:
            limit = "the end of the file" if extended else "the start of the points"
            raise _refused(
                path,
                f"Record Length After Header of {kind} {n}",
                length,
                f"the record would end at byte {at:,}, past {limit} ({end:,})",
            )


def _refused(path: Path, field: str, value: int, problem: str) -> IngestError:
    return IngestError(path, f"LAS {field} is {value:,}: {problem}; nothing was read")


class _Columns:
    """The columns of one overview level over the file's extent, and which of them already
    have their point: a column gets one point in the whole file, whatever the order of the
    points. A grid beyond GRID_LIMIT columns is not kept: its columns get one point per chunk."""

    def __init__(self, low: NDArray[np.float64], high: NDArray[np.float64], side: float) -> None:
        self.low, self.side = low, side
        with np.errstate(over="ignore"):  # absurd header bounds: not kept, as below
            extent = (high - low) / side
        kept = bool(np.isfinite(extent).all() and (extent >= 0).all())
        kept = kept and float(np.prod(np.floor(extent) + 1)) <= GRID_LIMIT
        self.shape = (np.floor(extent) + 1).astype(np.int64) if kept else np.zeros(2, np.int64)
        cells = int(self.shape[0] * self.shape[1])
        self.taken = np.zeros(cells, dtype=bool) if kept else None
        self.owner = np.empty(cells, dtype=np.int32) if kept else None
        self.loose = False  # the points turned out to lie outside the header's bounds

    def pick(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int64]:
        """Indices (ascending) of the points (x, y) that become their column's point."""
        cx = np.floor((x - self.low[0]) / self.side).astype(np.int64)
        cy = np.floor((y - self.low[1]) / self.side).astype(np.int64)
        if self.taken is None or self.owner is None:
            key = (cx << 32) | (cy & 0xFFFFFFFF)
            _, first = np.unique(key, return_index=True)
            return np.sort(first)
        outside = [
            len(c) and (int(c.min()) < -1 or int(c.max()) > int(top))
            for c, top in ((cx, self.shape[0]), (cy, self.shape[1]))
        ]
        if any(outside):  # the header's bounds do not hold the points
            self.taken = self.owner = None
            self.loose = True
            return self.pick(x, y)
        # a header's bounds may be loose by a scale step
        np.clip(cx, 0, self.shape[0] - 1, out=cx)
        np.clip(cy, 0, self.shape[1] - 1, out=cy)
        flat = cx * self.shape[1] + cy
        index = np.arange(len(flat), dtype=np.int32)
        self.owner[flat] = index  # one of the points of each column wins
        mine = (self.owner[flat] == index) & ~self.taken[flat]
        self.taken[flat[mine]] = True
        return np.flatnonzero(mine)


def _group(level: NDArray[np.int8], i: Int, j: Int) -> tuple[Int, Int]:
    """The order that sorts points by (level, i, j), the file's order within each group (i and
    j not negative, below 2**28), and where each group starts in it.

    The key is made dense over the chunk's span of cells and the point's index put in its low
    bits: every key is then distinct, and a plain sort of the keys (SIMD, ~10x faster than a
    stable argsort) gives the same order."""
    n = len(level)
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bits = max(1, (n - 1).bit_length())
    i0, j0 = int(i.min()), int(j.min())
    span_i, span_j = int(i.max()) - i0 + 1, int(j.max()) - j0 + 1
    levels = int(level.max()) + 1
    if levels * span_i * span_j < 1 << (63 - bits):
        key = (level.astype(np.int64) * span_i + (i - i0)) * span_j + (j - j0)
        key <<= bits
        key |= np.arange(n, dtype=np.int64)
        key.sort()
        order = key & ((1 << bits) - 1)
        key >>= bits
    else:  # cells spread too far for the spare bits: a stable sort of the plain key
        key = (level.astype(np.int64) << 56) | (i << 28) | j
        order = np.argsort(key, kind="stable")
        key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return order, starts


def _descr(dtype: Any) -> list[list[str]]:
    """A numpy record layout as JSON: [[name, type], ...] (LAS sub-byte fields stay packed)."""
    return [[name, str(dtype.fields[name][0].str)] for name in dtype.names]
