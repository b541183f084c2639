"""The vertex array of a CityJSON document, parsed in chunks straight from the mapped file, and
the helpers that keep the mapping's resident memory bounded."""

from __future__ import annotations

import mmap
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cim.errors import IngestError

VERTEX_CHUNK = 8 << 20
IN_MEMORY_VERTICES = 4_000_000


def first_byte(mm: mmap.mmap, start: int, end: int) -> bytes:
    """The first non-whitespace byte of a member's value, read without copying the value."""
    pos = start
    while pos < end:
        window = mm[pos : min(pos + 4096, end)].lstrip()
        if window:
            return window[:1]
        pos += 4096
    return b""


def drop_pages(mm: mmap.mmap, start: int, end: int) -> None:
    """Tell the kernel a mapped range is no longer needed, so it leaves resident memory
    (the pages stay in the file cache and come back if read again)."""
    first = (start // mmap.PAGESIZE) * mmap.PAGESIZE
    length = ((end - first) // mmap.PAGESIZE) * mmap.PAGESIZE
    if length > 0:
        mm.madvise(mmap.MADV_DONTNEED, first, length)


def parse_vertices(
    mm: mmap.mmap,
    start: int,
    end: int,
    scale: NDArray[np.float64],
    translate: NDArray[np.float64],
    path: Path,
) -> NDArray[np.float64]:
    """The document's vertex array, parsed in chunks, as real coordinates (n, 3).

    Large arrays go to a temporary memory-mapped file so that memory stays bounded.
    """
    table = bytes.maketrans(b"[],", b"   ")
    count = mm[start:end].count(b"[") - 1 if end - start < VERTEX_CHUNK else None
    parts: list[NDArray[np.float64]] = []
    spool: Any = None
    total = 0
    arrays = 0
    pos = start
    carry = b""
    while pos < end:
        stop = min(pos + VERTEX_CHUNK, end)
        block = carry + mm[pos:stop]
        if stop < end:
            cut = block.rfind(b"]") + 1
            carry, block = block[cut:], block[:cut]
        else:
            carry = b""
        pos = stop
        arrays += block.count(b"[")
        try:
            values = np.fromstring(block.translate(table), dtype=np.float64, sep=" ")  # noqa: NPY201
        except (ValueError, DeprecationWarning):  # a token that is not a number
            raise IngestError(path, "'vertices' holds something that is not a number") from None
        if values.size % 3:
            raise IngestError(path, "'vertices' must be an array of [x, y, z] integer triples")
        xyz = values.reshape(-1, 3) * scale + translate
        if not np.all(np.isfinite(xyz)):
            raise IngestError(path, "'vertices' holds a non-finite coordinate")
        total += len(xyz)
        if spool is None and total > IN_MEMORY_VERTICES:
            spool = tempfile.TemporaryFile(prefix="cim-vertices-")
            for p in parts:
                spool.write(p.tobytes())
            parts = []
        if spool is not None:
            spool.write(xyz.tobytes())
        else:
            parts.append(xyz)
    if arrays - 1 != total or (count is not None and count != total):
        raise IngestError(path, "'vertices' must be an array of [x, y, z] integer triples")
    if spool is None:
        return np.concatenate(parts) if parts else np.zeros((0, 3))
    spool.flush()
    return np.memmap(spool, dtype=np.float64, mode="r", shape=(total, 3))
