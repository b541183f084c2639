"""Tiles a browser can stream: where the objects of over-full tiles go, so that no content passes
`BUDGET` bytes however dense the data.

CIM's quadtree puts an object by its size alone (cim.tiling), so a dense district, or a LAS file
of ten million points over a square kilometre, piles into a few tiles of tens of megabytes. The
objects of a tile whose content would pass the budget are *pooled* and given out top-down: a
cell keeps the most important of its pool (largest first, then by id) up to a quarter of the
budget, and every object larger than a child cell, and passes the rest to its four children,
by the child holding each object's centre. A child's pool is what its parent passed down plus
its own tile's objects (tiles.availability pools every tile that receives any), and so on
until a pool fits. Each object ends in exactly one cell, and each cell has one content.

It is stable: the same data always gives the same cells (no order of arrival, no randomness),
and cheap: it reads the objects of over-full tiles only, once per data generation.

What the viewer sees: an object passed d levels down appears when the view would draw that
deeper level, so in dense areas the smaller objects come in later than their size alone would
have them (that is the point: the view streams 2 MB at a time instead of 58 MB at once). No
object goes into a cell smaller than itself, so it stands out of its cell by half its size at
most.

A content's size is estimated from what the database keeps of each object (`weight_sql`: 32
bytes per mesh vertex, 12 per triangle, 28 per point, 200 per object for its property-table
row). Measured on the 8 largest tiles of a generated city, GLB without meshopt takes 0.61 of
that estimate and with meshopt 0.29, so mesh bytes count half when meshopt is on (points count
in full). An object that alone passes the budget stays alone in its cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cim.tiling import METRES_PER_DEGREE, OBJECT_BYTES

BUDGET = 2_000_000  # bytes of one content, before HTTP compression (CIM_TILES_CONTENT_MAX_KB)
KEEP = 4  # an over-full cell keeps at most BUDGET / KEEP of its pool
DEEPEST = 24  # cells of about 1.2 m north-south: below that a pool stays where it is
# the estimated bytes of an object's content (SQL over city_object o), as ingest weighed it
# (cim.tiling.object_weights): its mesh's bytes count half with meshopt
_WEIGHT = f"""({OBJECT_BYTES} + coalesce(o.mesh_weight, 0) / {{div}}
    + coalesce(o.plain_weight, 0))"""


def weight_sql(meshopt: bool) -> str:
    """The SQL expression of an object's estimated content bytes."""
    return _WEIGHT.format(div=2 if meshopt else 1)


@dataclass(frozen=True)
class Pooled:
    """The objects of over-full tiles: id, tile key, centre (degrees), size (m), weight."""

    ids: NDArray[np.int64]
    levels: NDArray[np.int64]
    xs: NDArray[np.int64]
    ys: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    size: NDArray[np.float64]
    weight: NDArray[np.int64]


def _cell(level: int, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[Any, Any]:
    n = 1 << level
    x = np.clip(np.floor((lon + 180.0) / 360.0 * n), 0, n - 1).astype(np.int64)
    y = np.clip(np.floor((lat + 90.0) / 180.0 * n), 0, n - 1).astype(np.int64)
    return x, y


def plan(pooled: Pooled, budget: int = BUDGET) -> dict[tuple[int, int, int], NDArray[np.int64]]:
    """The cell of every pooled object: the ids each cell's `parts` content holds."""
    count = len(pooled.ids)
    level = pooled.levels.copy()
    x, y = pooled.xs.copy(), pooled.ys.copy()
    done = np.zeros(count, dtype=bool)
    # most important first: largest, then by id; a pool keeps a prefix of this order
    rank = np.empty(count, dtype=np.int64)
    rank[np.lexsort((pooled.ids, -pooled.size))] = np.arange(count)
    # the deepest level whose cells are still as large as the object: it goes no deeper, so that
    # it stands out of its cell by half its size at most
    ns = 180.0 * METRES_PER_DEGREE
    lowest = np.floor(np.log2(ns / np.maximum(pooled.size, 1e-3))).astype(np.int64)
    out: dict[tuple[int, int, int], NDArray[np.int64]] = {}
    for here in range(int(level.min(initial=DEEPEST)), DEEPEST + 1):
        at = np.flatnonzero((level == here) & ~done)
        if not len(at):
            continue
        order = at[np.lexsort((rank[at], y[at], x[at]))]  # by cell, then by importance
        cells = np.stack((x[order], y[order]), axis=1)
        starts = np.flatnonzero(np.r_[True, (cells[1:] != cells[:-1]).any(axis=1)])
        ends = np.r_[starts[1:], len(order)]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            members = order[a:b]
            w = pooled.weight[members]
            if here == DEEPEST or int(w.sum()) <= budget:
                kept = members
            else:
                fits = int((np.cumsum(w) <= budget // KEEP).sum())
                # objects larger than a child cell stay (the largest: a prefix of the order)
                stuck = int((lowest[members] <= here).sum())
                kept = members[: max(fits, stuck, 1)]  # a lone giant stays alone
                rest = members[len(kept) :]
                level[rest] = here + 1
                x[rest], y[rest] = _cell(here + 1, pooled.lon[rest], pooled.lat[rest])
            done[kept] = True
            out[(here, int(x[members[0]]), int(y[members[0]]))] = np.sort(pooled.ids[kept])
    return out
