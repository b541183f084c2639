"""A city as a 3D Tiles 1.1 implicit tileset: CIM's fixed global quadtree (cim.tiling) said in
a few lines of tileset JSON, and which of its cells exist in binary subtree files.

Why implicit: an explicit tileset lists every tile, so its JSON grows with the city (107 KB for
100,000 buildings, about 1 MB for a million) and a viewer must read all of it before it draws
anything. The implicit tileset's JSON is the same few hundred bytes for any city, and a viewer
reads availability only for the subtrees it walks into.

The implicit root is CIM's level-0 cell (the whole globe, as a region), so implicit tile
coordinates *are* CIM's tile keys: a content's URI (`tiles/{level}/{x}/{y}.glb`) is the one the
explicit tileset gives it, served and cached by the same route. Subtrees start at levels that are
multiples of `SUBTREE_LEVELS`; a subtree's URI names its root tile.

Geometric error. Implicit tiling allows no per-tile error: the root's is given and each level
halves it. CIM's rule maps onto that exactly: an object sits at the deepest level whose cells
are at least `FACTOR` times its size, so what a tile at level L leaves out (the objects of
deeper levels) is at most a level-(L+1) cell's north-south extent over `FACTOR`, which halves
from level to level. The explicit tileset says the largest object actually left out; the
implicit one says the most that can be (never less).

Bounding volumes: each implicit tile's region is its quadtree cell, with the city's lowest and
highest heights. An object is in the cell holding its centre and is at most 1/FACTOR of the cell
wide, so it may stand out of its cell by up to 1/(2 * FACTOR) of the cell.

Pure: tile keys in, JSON or bytes out.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from cim.tiling import FACTOR, METRES_PER_DEGREE
from tiles.split import DEEPEST

SUBTREE_LEVELS = 6  # levels per subtree: 1,365 tile bits and 4,096 child-subtree bits
CONTENT_URI = "tiles/{level}/{x}/{y}.glb"
# contents of a city whose over-full tiles' objects were given out to finer cells (tiles.split)
CELLS_URI = "cells/{level}/{x}/{y}.glb"
SUBTREE_URI = "subtrees/{level}/{x}/{y}.subtree"
# cities with more tiles than this get the implicit tileset by default (3D Tiles 1.1): their
# explicit JSON would pass about 230 KB
IMPLICIT_FROM_TILES = 1000
_MAGIC = b"subt"


def geometric_error(level: int) -> float:
    """The most a tile at `level` leaves out: the size bound of objects one level deeper."""
    return 180.0 * METRES_PER_DEGREE / (FACTOR * 2.0 ** (level + 1))


@dataclass(frozen=True)
class KeySet:
    """The cells with content of a city, an (n, 3) array of level, x, y, and its height range;
    `split` when some of its tiles were over-full and their objects given out (tiles.split):
    then the contents are named `cells/...` (CELLS_URI), else `tiles/...` as in the explicit
    tileset."""

    keys: NDArray[np.int64]
    low: float
    high: float
    split: bool = False

    def __len__(self) -> int:
        return len(self.keys)


def key_set(
    keys: list[tuple[int, int, int]], low: float, high: float, split: bool = False
) -> KeySet:
    """A KeySet from (level, x, y) keys."""
    return KeySet(np.array(keys, dtype=np.int64).reshape(-1, 3), low, high, split)


def implicit_tileset(keys: KeySet) -> dict[str, Any] | None:
    """The implicit tileset JSON of these tiles (GLB content), or None when there is none."""
    if not len(keys):
        return None
    deepest = int(keys.keys[:, 0].max())
    pad = 1.0  # metre: heights are stored to the centimetre; content is quantized within it
    return {
        "asset": {"version": "1.1", "generator": "CIM"},
        "geometricError": _round(geometric_error(-1)),
        "root": {
            "boundingVolume": {
                "region": [
                    -math.pi,
                    -math.pi / 2,
                    math.pi,
                    math.pi / 2,
                    _round(keys.low - pad),
                    _round(keys.high + pad),
                ]
            },
            "geometricError": _round(geometric_error(0)),
            "refine": "ADD",
            "content": {"uri": CELLS_URI if keys.split else CONTENT_URI},
            "implicitTiling": {
                "subdivisionScheme": "QUADTREE",
                "subtreeLevels": SUBTREE_LEVELS,
                "availableLevels": deepest + 1,
                "subtrees": {"uri": SUBTREE_URI},
            },
        },
    }


def explicit_tileset(
    keys: KeySet, formats_1_0: Mapping[tuple[int, int, int], str] | None = None
) -> dict[str, Any] | None:
    """The explicit tileset JSON of the same cells as `implicit_tileset`, or None when there is
    none: for clients that ask for an explicit tileset of a city whose over-full tiles were
    given out in parts, so that its contents keep within the budget too. Each tile is its
    cell, with the bounding region and geometric error implicit tiling gives it, and content at
    the cells that have content: GLB (3D Tiles 1.1), or with `formats_1_0` (each cell's
    format: b3dm, pnts or cmpt) 3D Tiles 1.0."""
    if not len(keys):
        return None
    with_content = {(int(k[0]), int(k[1]), int(k[2])) for k in keys.keys}
    children: dict[tuple[int, int, int], set[tuple[int, int, int]]] = {}
    root = _common_root(with_content)
    for key in with_content:
        while key != root:
            up = (key[0] - 1, key[1] >> 1, key[2] >> 1)
            known = up in children
            children.setdefault(up, set()).add(key)
            if known:
                break
            key = up
    pad = 1.0  # metre, as the implicit root's region
    low, high = _round(keys.low - pad), _round(keys.high + pad)
    uri = CELLS_URI if keys.split else CONTENT_URI
    if formats_1_0 is not None:
        uri = uri.removesuffix(".glb") + ".{ext}"

    def tile(key: tuple[int, int, int]) -> dict[str, Any]:
        level, x, y = key
        n = 1 << level
        west, south = -math.pi + 2 * math.pi * x / n, -math.pi / 2 + math.pi * y / n
        node: dict[str, Any] = {
            "boundingVolume": {
                "region": [
                    _round(west),
                    _round(south),
                    _round(west + 2 * math.pi / n),
                    _round(south + math.pi / n),
                    low,
                    high,
                ]
            },
            "geometricError": _round(geometric_error(level)),
        }
        if key in with_content:
            ext = formats_1_0[key] if formats_1_0 is not None else "glb"
            node["content"] = {"uri": uri.format(level=level, x=x, y=y, ext=ext)}
        if key in children:
            node["children"] = [tile(child) for child in sorted(children[key])]
        return node

    top = tile(root)
    top["refine"] = "ADD"
    return {
        "asset": {"version": "1.1" if formats_1_0 is None else "1.0", "generator": "CIM"},
        "geometricError": _round(geometric_error(root[0] - 1)),
        "root": top,
    }


def _common_root(keys: set[tuple[int, int, int]]) -> tuple[int, int, int]:
    """The deepest cell that holds all these cells."""
    level = min(k[0] for k in keys)
    cells = {(level, k[1] >> (k[0] - level), k[2] >> (k[0] - level)) for k in keys}
    while len(cells) > 1:
        cells = {(c[0] - 1, c[1] >> 1, c[2] >> 1) for c in cells}
        level -= 1
    return cells.pop()


def is_subtree_root(level: int, x: int, y: int) -> bool:
    """Whether a subtree starts at this cell (a level that is a multiple of SUBTREE_LEVELS)."""
    n = 1 << level
    return 0 <= level <= DEEPEST and level % SUBTREE_LEVELS == 0 and 0 <= x < n and 0 <= y < n


def _morton(x: NDArray[np.int64], y: NDArray[np.int64]) -> NDArray[np.int64]:
    """Morton index of (x, y) within a level, x in the least significant bit."""

    def spread(v: NDArray[np.int64]) -> NDArray[np.int64]:
        v = v & 0xFFFF
        v = (v | (v << 8)) & 0x00FF00FF
        v = (v | (v << 4)) & 0x0F0F0F0F
        v = (v | (v << 2)) & 0x33333333
        return (v | (v << 1)) & 0x55555555

    return spread(x) | (spread(y) << 1)


def _bits(indices: NDArray[np.int64], length: int) -> NDArray[np.uint8]:
    """A bitstream of `length` bits with these set (bit i in byte i // 8 at position i % 8)."""
    flags = np.zeros(length, dtype=np.uint8)
    flags[indices] = 1
    return np.packbits(flags, bitorder="little")


def _inside(keys: NDArray[np.int64], level: int, x: int, y: int) -> NDArray[np.int64]:
    """The keys at or below cell (level, x, y)."""
    below = keys[:, 0] >= level
    shift = np.where(below, keys[:, 0] - level, 0)
    inside = below & ((keys[:, 1] >> shift) == x) & ((keys[:, 2] >> shift) == y)
    return keys[inside]


def subtree(keys: KeySet, level: int, x: int, y: int) -> bytes | None:
    """The binary subtree file rooted at cell (level, x, y), or None when nothing in it or
    below it has content (no such subtree is available)."""
    n = SUBTREE_LEVELS
    every = _inside(keys.keys, level, x, y)
    if not len(every):
        return None
    offsets = [((1 << (2 * d)) - 1) // 3 for d in range(n)]  # first bit of each local level

    def bits(found: NDArray[np.int64], d: int) -> NDArray[np.int64]:
        """The tile bits at local level d of the cells at or above these keys."""
        s = found[:, 0] - (level + d)
        found, s = found[s >= 0], s[s >= 0]
        local = _morton((found[:, 1] >> s) - (x << d), (found[:, 2] >> s) - (y << d))
        return offsets[d] + local

    tile_bits = [bits(every, d) for d in range(n)]
    content_bits = [bits(every[every[:, 0] == level + d], d) for d in range(n)]
    deeper = every[every[:, 0] >= level + n]
    s = deeper[:, 0] - (level + n)
    child = _morton((deeper[:, 1] >> s) - (x << n), (deeper[:, 2] >> s) - (y << n))
    total = ((1 << (2 * n)) - 1) // 3
    streams = [("tileAvailability", np.unique(np.concatenate(tile_bits)), total)]
    streams.append(("contentAvailability", np.unique(np.concatenate(content_bits)), total))
    streams.append(("childSubtreeAvailability", np.unique(child), 1 << (2 * n)))
    return _subtree_file(streams)


def _subtree_file(streams: list[tuple[str, NDArray[np.int64], int]]) -> bytes:
    """The subtree binary: header, JSON chunk and binary chunk, each padded to 8 bytes; a
    stream with every bit equal is written as a constant."""
    doc: dict[str, Any] = {}
    views: list[dict[str, int]] = []
    body = bytearray()
    for name, set_bits, length in streams:
        count = len(set_bits)
        if count in (0, length):
            entry: dict[str, int] = {"constant": 1 if count else 0, "availableCount": count}
        else:
            data = _bits(set_bits, length).tobytes()
            views.append({"buffer": 0, "byteOffset": len(body), "byteLength": len(data)})
            body += data
            body += b"\0" * (-len(body) % 8)
            entry = {"bitstream": len(views) - 1, "availableCount": count}
        doc[name] = [entry] if name == "contentAvailability" else entry
    if views:
        doc["buffers"] = [{"byteLength": len(body)}]
        doc["bufferViews"] = views
    text = orjson.dumps(doc)
    text += b" " * (-len(text) % 8)
    return _MAGIC + struct.pack("<IQQ", 1, len(text), len(body)) + text + bytes(body)


def read_subtree(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON and binary chunks of a subtree file (for tests and tools).

    Raises:
        ValueError: not a subtree file.
    """
    if data[:4] != _MAGIC:
        raise ValueError("not a subtree file (magic is not 'subt')")
    _, json_length, bin_length = struct.unpack_from("<IQQ", data, 4)
    start = 24
    doc = orjson.loads(data[start : start + json_length])
    return doc, data[start + json_length : start + json_length + bin_length]


def availability_bits(
    doc: dict[str, Any], binary: bytes, entry: dict[str, Any], length: int
) -> NDArray[np.bool_]:
    """An availability of a read subtree (bitstream or constant) as one bool per bit (for
    tests and tools)."""
    if "constant" in entry:
        return np.full(length, bool(entry["constant"]))
    view = doc["bufferViews"][entry["bitstream"]]
    raw = np.frombuffer(binary, np.uint8, view["byteLength"], view["byteOffset"])
    return np.unpackbits(raw, bitorder="little")[:length].astype(bool)


def local_key(index: int) -> tuple[int, int, int]:
    """Local level, x and y of a bit of a subtree's tile availability (Morton order)."""
    level = 0
    while index >= (1 << (2 * level)):
        index -= 1 << (2 * level)
        level += 1
    x = y = 0
    for bit in range(level):
        x |= ((index >> (2 * bit)) & 1) << bit
        y |= ((index >> (2 * bit + 1)) & 1) << bit
    return level, x, y


def _round(value: float) -> float:
    return float(f"{value:.10g}")
