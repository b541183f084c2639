"""The tileset JSON of a city: an explicit tree over the non-empty cells of the global quadtree.

Each object lives in one tile (refine ADD). A tile's geometric error is the size of the largest
object its subtree still has to add — what is missing if the tile is drawn without its
descendants — so leaves have 0. Bounding regions are the union of the tile's own objects and its
children, so each contains its content and its children. Pure: tile statistics in, dict out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Key = tuple[int, int, int]  # level, x, y


@dataclass
class TileStats:
    """What the database says of one non-empty tile."""

    key: Key
    count: int
    west: float
    south: float
    east: float
    north: float
    low: float
    high: float
    max_size: float
    points: str = ""  # point-cloud objects in the tile: "" none, "some", "only"


@dataclass
class _Node:
    key: Key
    stats: TileStats | None = None
    children: list[_Node] = field(default_factory=list)
    region: list[float] = field(default_factory=list)
    below: float = 0.0  # largest object size in the strict descendants


def parent(key: Key) -> Key:
    """The cell one level up."""
    level, x, y = key
    return (level - 1, x >> 1, y >> 1)


def _common_root(keys: list[Key]) -> Key:
    level = min(k[0] for k in keys)
    cells = {(level, k[1] >> (k[0] - level), k[2] >> (k[0] - level)) for k in keys}
    while len(cells) > 1:
        cells = {parent(c) for c in cells}
        level -= 1
    return cells.pop()


def content_uri(key: Key, extension: str) -> str:
    """Relative URI of a tile's content."""
    return f"tiles/{key[0]}/{key[1]}/{key[2]}.{extension}"


def build_tileset(
    stats: list[TileStats], version: str = "1.1", extension: str = "glb"
) -> dict[str, Any] | None:
    """The tileset JSON for these tiles, or None when there is none."""
    if not stats:
        return None
    nodes: dict[Key, _Node] = {}
    root_key = _common_root([s.key for s in stats])
    for s in stats:
        node = nodes.setdefault(s.key, _Node(s.key))
        node.stats = s
        key = s.key
        while key != root_key:
            up = parent(key)
            created = up not in nodes
            parent_node = nodes.setdefault(up, _Node(up))
            child = nodes[key]
            if child not in parent_node.children:
                parent_node.children.append(child)
            if not created:
                break
            key = up
    root = nodes[root_key]
    _summarise(root)
    top = max(root.below, root.stats.max_size if root.stats else 0.0)
    return {
        "asset": {"version": version, "generator": "CIM"},
        "geometricError": _round(max(top, 1.0)),
        "root": _tile(root, extension, refine=True),
    }


def _summarise(node: _Node) -> tuple[list[float], float]:
    """Fill regions and errors bottom-up; returns the node's region and its largest object."""
    regions = []
    largest_below = 0.0
    for child in sorted(node.children, key=lambda c: c.key):
        region, largest = _summarise(child)
        regions.append(region)
        largest_below = max(largest_below, largest)
    node.children.sort(key=lambda c: c.key)
    if node.stats is not None:
        s = node.stats
        # padded by the 16-bit quantization step of the content (1/65534 of its largest
        # extent, doubled) plus a centimetre, so every stored vertex lies inside
        radius = 6_378_137.0
        west, south = math.radians(s.west), math.radians(s.south)
        east, north = math.radians(s.east), math.radians(s.north)
        extent = max(
            (east - west) * radius * math.cos((south + north) / 2),
            (north - south) * radius,
            s.high - s.low,
        )
        pad_m = extent / 32767 + 0.01
        pad = pad_m / radius
        regions.append(
            [west - pad, south - pad, east + pad, north + pad, s.low - pad_m, s.high + pad_m]
        )
    node.region = [
        min(r[0] for r in regions),
        min(r[1] for r in regions),
        max(r[2] for r in regions),
        max(r[3] for r in regions),
        min(r[4] for r in regions),
        max(r[5] for r in regions),
    ]
    node.below = largest_below
    own = node.stats.max_size if node.stats else 0.0
    return node.region, max(own, largest_below)


def _extension(stats: TileStats, extension: str) -> str:
    """3D Tiles 1.0 names its content by format: pnts for point clouds, cmpt for point clouds
    with other objects, b3dm for the rest (the service makes all three from one format)."""
    if extension != "b3dm" or not stats.points:
        return extension
    return "pnts" if stats.points == "only" else "cmpt"


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _tile(node: _Node, extension: str, refine: bool = False) -> dict[str, Any]:
    tile: dict[str, Any] = {
        "boundingVolume": {"region": node.region},
        "geometricError": _round(node.below),
    }
    if refine:
        tile["refine"] = "ADD"
    if node.stats is not None:
        tile["content"] = {"uri": content_uri(node.key, _extension(node.stats, extension))}
    if node.children:
        tile["children"] = [_tile(c, extension) for c in node.children]
    return tile
