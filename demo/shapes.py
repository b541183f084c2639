"""Geometry of the synthetic demo city: street grid, lots, building solids, ground polygons, trees.

Everything here works in local metres (origin at the city's south-west corner) and emits CityJSON
boundaries whose vertex indices start at a caller-given `base`, so a streaming writer can place
each object's vertices after everything written before it without re-walking the boundaries.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
Vertex = list[int]

# Street classes: width (m), sidewalk width on each side (m), lanes.
STREET_CLASSES: dict[str, tuple[float, float, int]] = {
    "arterial": (32.0, 5.0, 6),
    "collector": (24.0, 4.0, 4),
    "local": (18.0, 3.5, 2),
}

BUILDING_SEMANTICS: list[Json] = [
    {"type": "GroundSurface"},
    {"type": "WallSurface"},
    {"type": "RoofSurface"},
]

# Surfaces of a building solid as local vertex indices: 0-3 ground corners (counter-clockwise seen
# from above), 4-7 the eave corners above them, 8-9 the ridge ends (west, east) for pitched roofs.
_WALLS = ((0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))
_SOLIDS: dict[str, tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]] = {
    "flat": (((0, 3, 2, 1), *_WALLS, (4, 5, 6, 7)), (0, 1, 1, 1, 1, 2)),
    "gabled": (
        (
            (0, 3, 2, 1),
            (0, 1, 5, 4),
            (1, 2, 6, 9, 5),
            (2, 3, 7, 6),
            (3, 0, 4, 8, 7),
            (4, 5, 9, 8),
            (6, 7, 8, 9),
        ),
        (0, 1, 1, 1, 1, 2, 2),
    ),
    "hipped": (
        ((0, 3, 2, 1), *_WALLS, (4, 5, 9, 8), (6, 7, 8, 9), (5, 6, 9), (7, 4, 8)),
        (0, 1, 1, 1, 1, 2, 2, 2, 2),
    ),
}


def mm(value: float) -> int:
    """Quantise metres to the integer millimetres the 0.001 transform scale stores."""
    return int(round(value * 1000.0))


@dataclass(frozen=True)
class Street:
    """One grid line of the street network: where it starts across its run, and its class."""

    index: int
    start: float
    cls: str

    @property
    def width(self) -> float:
        """Full width between the building lines, in metres."""
        return STREET_CLASSES[self.cls][0]

    @property
    def sidewalk(self) -> float:
        """Width of each sidewalk, in metres."""
        return STREET_CLASSES[self.cls][1]

    @property
    def lanes(self) -> int:
        """Number of traffic lanes on the carriageway."""
        return STREET_CLASSES[self.cls][2]

    @property
    def end(self) -> float:
        """Coordinate of the far edge of the street."""
        return self.start + self.width


@dataclass(frozen=True)
class Grid:
    """A rectangular street grid: `n + 1` streets each way with `n` block spans between them."""

    columns: list[tuple[float, float]]
    rows: list[tuple[float, float]]
    vertical: list[Street]
    horizontal: list[Street]

    @property
    def size(self) -> tuple[float, float]:
        """Width and height of the whole city, in metres."""
        return self.vertical[-1].end, self.horizontal[-1].end


def _street_class(k: int, n: int) -> str:
    """Arterials every fourth line and on the outer ring, collectors in between, else local."""
    if k % 4 == 0 or k == n:
        return "arterial"
    return "collector" if k % 2 == 0 else "local"


def _axis(n: int, rng: random.Random) -> tuple[list[Street], list[tuple[float, float]]]:
    """Lay out one axis: alternating street and block spans, blocks 120-200 m long."""
    streets: list[Street] = []
    spans: list[tuple[float, float]] = []
    pos = 0.0
    for k in range(n + 1):
        street = Street(k, pos, _street_class(k, n))
        streets.append(street)
        pos = street.end
        if k < n:
            length = round(rng.uniform(120.0, 200.0) * 2) / 2
            spans.append((pos, pos + length))
            pos += length
    return streets, spans


def street_grid(n: int, rng: random.Random) -> Grid:
    """A grid of `n` x `n` blocks with varied block sizes."""
    vertical, columns = _axis(n, rng)
    horizontal, rows = _axis(n, rng)
    return Grid(columns, rows, vertical, horizontal)


Box = tuple[float, float, float, float]
Block = tuple[int, int]
BUILDINGS_PER_BLOCK = 20  # on average; the grid is sized from it
BLOCK_CAP = 45


@dataclass
class CityPlan:
    """The street grid, what each block is used for and how many buildings it gets."""

    grid: Grid
    kinds: dict[Block, str]
    counts: dict[Block, int]
    rings: dict[Block, float]
    centre: Block


def plan_city(buildings: int, rng: random.Random) -> CityPlan:
    """Size the grid for `buildings`, pick park/lake/river blocks and share buildings out."""
    n = max(3, math.ceil(math.sqrt(buildings / BUILDINGS_PER_BLOCK / 0.8)))
    grid = street_grid(n, rng)
    width, height = grid.size
    rings: dict[Block, float] = {}
    for j, (y0, y1) in enumerate(grid.rows):
        for i, (x0, x1) in enumerate(grid.columns):
            dx, dy = (x0 + x1 - width) / 2, (y0 + y1 - height) / 2
            rings[i, j] = min(1.0, math.hypot(dx, dy) / (min(width, height) / 2))
    centre = min(rings, key=lambda b: (rings[b], b[1], b[0]))
    river_row = min(n - 1, centre[1] + max(2, round(n * 0.35))) if n >= 6 else None
    kinds: dict[Block, str] = {}
    for block in rings:
        kinds[block] = "park" if rng.random() < 0.07 and block != centre else "built"
        if block[1] == river_row:
            kinds[block] = "river"
    kinds[centre[0], centre[1] + 1] = "lake"
    built = [b for b in rings if kinds[b] == "built"]
    weights = [(1.5 - rings[b]) * rng.uniform(0.85, 1.15) for b in built]
    caps = [6 if b == centre else BLOCK_CAP for b in built]
    scale = buildings / sum(weights)
    raw = [w * scale for w in weights]
    counts = [min(cap, int(x)) for x, cap in zip(raw, caps, strict=True)]
    counts[built.index(centre)] = max(1, counts[built.index(centre)])
    order = sorted(range(len(built)), key=lambda k: int(raw[k]) - raw[k])
    floors = [1 if b == centre else 0 for b in built]
    total = sum(counts)
    while total != buildings:
        step = 1 if total < buildings else -1
        for k in order if step > 0 else order[::-1]:
            if total != buildings and floors[k] <= counts[k] + step <= caps[k]:
                counts[k] += step
                total += step
    return CityPlan(grid, kinds, dict(zip(built, counts, strict=True)), rings, centre)


def block_lots(box: Box, count: int, setback: float) -> list[Box]:
    """Split a block, minus a setback from the streets, into `count` lots in a near-square grid."""
    x0, y0, x1, y1 = box[0] + setback, box[1] + setback, box[2] - setback, box[3] - setback
    if count <= 0:
        return []
    cols = max(1, math.ceil(math.sqrt(count * (x1 - x0) / (y1 - y0))))
    rows = math.ceil(count / cols)
    w, h = (x1 - x0) / cols, (y1 - y0) / rows
    lots = [
        (x0 + c * w, y0 + r * h, x0 + (c + 1) * w, y0 + (r + 1) * h)
        for r in range(rows)
        for c in range(cols)
    ]
    return lots[:count]


def footprint(
    lot: Box, max_long: float, max_short: float, rng: random.Random, margin: float = 2.0
) -> list[tuple[float, float]]:
    """A rectangle inside the lot (kept `margin` away from its edges), long side first.

    Corners come counter-clockwise seen from above, starting so that edge 0-1 runs along the long
    axis; a few buildings are turned by up to 8 degrees and shrunk until they still fit.
    """
    aw, ah = lot[2] - lot[0] - 2 * margin, lot[3] - lot[1] - 2 * margin
    along_x = aw >= ah
    room_long, room_short = (aw, ah) if along_x else (ah, aw)
    length = max(4.0, rng.uniform(0.6, 1.0) * min(max_long, room_long))
    depth = max(4.0, rng.uniform(0.6, 1.0) * min(max_short, room_short))
    depth = min(depth, length)
    angle = (0.0 if along_x else math.pi / 2) + (
        math.radians(rng.uniform(-8.0, 8.0)) if rng.random() < 0.12 else 0.0
    )
    c, s = math.cos(angle), math.sin(angle)
    bw, bh = length * abs(c) + depth * abs(s), length * abs(s) + depth * abs(c)
    shrink = min(1.0, aw / bw, ah / bh)
    length, depth, bw, bh = length * shrink, depth * shrink, bw * shrink, bh * shrink
    cx = rng.uniform(lot[0] + margin + bw / 2, lot[2] - margin - bw / 2)
    cy = rng.uniform(lot[1] + margin + bh / 2, lot[3] - margin - bh / 2)
    half = ((-1, -1), (1, -1), (1, 1), (-1, 1))
    return [
        (cx + (a * length * c - b * depth * s) / 2, cy + (a * length * s + b * depth * c) / 2)
        for a, b in half
    ]


def building_solid(
    corners: list[tuple[float, float]],
    eave: int,
    ridge: int,
    roof: str,
    ridge_inset: float,
    base: int,
) -> tuple[Json, list[Vertex]]:
    """An LoD2 Solid with Ground/Wall/Roof semantics for a flat, gabled or hipped roof.

    Heights are integer millimetres; the ridge runs along edge 0-1 and, for hipped roofs, stops
    `ridge_inset` (0-0.5, a fraction of the length) short of each end.
    """
    ground = [[mm(x), mm(y), 0] for x, y in corners]
    vertices = ground + [[x, y, eave] for x, y, _ in ground]
    if roof != "flat":
        west = ((corners[0][0] + corners[3][0]) / 2, (corners[0][1] + corners[3][1]) / 2)
        east = ((corners[1][0] + corners[2][0]) / 2, (corners[1][1] + corners[2][1]) / 2)
        t = ridge_inset if roof == "hipped" else 0.0
        for a, b in ((west, east), (east, west)):
            x, y = a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
            vertices.append([mm(x), mm(y), ridge])
    surfaces, values = _SOLIDS[roof]
    geometry = {
        "type": "Solid",
        "lod": "2",
        "boundaries": [[[[i + base for i in ring]] for ring in surfaces]],
        "semantics": {"surfaces": BUILDING_SEMANTICS, "values": [list(values)]},
    }
    return geometry, vertices


Ring = list[tuple[float, float]]


def ground_surfaces(
    polygons: list[list[Ring]], base: int, semantics: list[Json] | None = None, values: Any = None
) -> tuple[Json, list[Vertex]]:
    """An LoD1 MultiSurface at z = 0 from polygons (outer ring, then holes), sharing vertices."""
    vertices: list[Vertex] = []
    index: dict[tuple[int, int], int] = {}
    boundaries = []
    for polygon in polygons:
        surface = []
        for ring in polygon:
            indices = []
            for x, y in ring:
                key = (mm(x), mm(y))
                if key not in index:
                    index[key] = base + len(vertices)
                    vertices.append([key[0], key[1], 0])
                indices.append(index[key])
            surface.append(indices)
        boundaries.append(surface)
    geometry: Json = {"type": "MultiSurface", "lod": "1", "boundaries": boundaries}
    if semantics is not None:
        geometry["semantics"] = {"surfaces": semantics, "values": values}
    return geometry, vertices


def rectangle(box: Box) -> Ring:
    """Corners of an axis-aligned box, counter-clockwise seen from above."""
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


@dataclass(frozen=True)
class Ellipse:
    """An axis-aligned ellipse, for lakes and ponds."""

    cx: float
    cy: float
    rx: float
    ry: float

    def outline(self, sides: int = 16) -> Ring:
        """The ellipse as a polygon, counter-clockwise seen from above."""
        steps = [2 * math.pi * (k + 0.5) / sides for k in range(sides)]
        return [(self.cx + self.rx * math.cos(a), self.cy + self.ry * math.sin(a)) for a in steps]

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        """Whether (x, y) lies within the ellipse grown by `margin` metres."""
        dx, dy = (x - self.cx) / (self.rx + margin), (y - self.cy) / (self.ry + margin)
        return dx * dx + dy * dy < 1.0


def road_polygons(street: Street, horizontal: bool, span: tuple[float, float]) -> list[Box]:
    """Carriageway, then the two sidewalks, of one street between two crossings."""
    a0, a1 = span
    s, e, sw = street.start, street.end, street.sidewalk
    strips = ((s + sw, e - sw), (s, s + sw), (e - sw, e))
    return [(a0, c0, a1, c1) if horizontal else (c0, a0, c1, a1) for c0, c1 in strips]


def points_along(
    horizontal: bool, span: tuple[float, float], across: float, first: float, step: float
) -> list[tuple[float, float]]:
    """Points every `step` m on the line `across` a street, `first` m in, 5 m short of its end."""
    a0, a1 = span
    along = [a0 + first + step * k for k in range(int((a1 - a0 - first - 5.0) // step) + 1)]
    return [(a, across) if horizontal else (across, a) for a in along]


def point(base: int) -> Json:
    """An LoD1 MultiPoint with one point, the object's first vertex."""
    return {"type": "MultiPoint", "lod": "1", "boundaries": [base]}


TREE_TEMPLATE_HEIGHT = 10.0
TREE_CROWN_DIAMETER = 5.6


def tree_templates() -> Json:
    """The `geometry-templates` member: one LoD2 tree, a square trunk under an octahedral crown."""
    r, t = TREE_CROWN_DIAMETER / 2, 0.2
    trunk = [[x, y, z] for z in (0.0, 3.0) for x, y in ((-t, -t), (t, -t), (t, t), (-t, t))]
    crown = [[0.0, 0.0, 3.0], [r, 0.0, 6.0], [0.0, r, 6.0], [-r, 0.0, 6.0], [0.0, -r, 6.0]]
    crown.append([0.0, 0.0, TREE_TEMPLATE_HEIGHT])
    rings = [[[0, 3, 2, 1]], *[[list(w)] for w in _WALLS], [[4, 5, 6, 7]]]
    for k in range(4):
        e0, e1 = 9 + k, 9 + (k + 1) % 4
        rings += [[[8, e1, e0]], [[13, e0, e1]]]
    return {
        "templates": [{"type": "MultiSurface", "lod": "2", "boundaries": rings}],
        "vertices-templates": trunk + crown,
    }


def tree_instance(base: int, height: float, heading: float) -> Json:
    """A GeometryInstance of the tree template scaled to `height` and turned by `heading` rad."""
    s = height / TREE_TEMPLATE_HEIGHT
    c, n = round(s * math.cos(heading), 4), round(s * math.sin(heading), 4)
    matrix = [c, -n, 0.0, 0.0, n, c, 0.0, 0.0] + [0.0, 0.0, round(s, 4), 0.0, 0.0, 0.0, 0.0, 1.0]
    return {
        "type": "GeometryInstance",
        "template": 0,
        "boundaries": [base],
        "transformationMatrix": matrix,
    }
