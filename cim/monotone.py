"""Triangulating one large polygon (holes and all) in O(n log n), for the faces earcut would take
quadratic time over: many holes (earcut joins each hole to the exterior by scanning all of it) or
long rings (its search for ears degrades on tens of thousands of vertices).

The textbook way (de Berg et al., *Computational Geometry*, chapter 3): a sweep over the vertices,
left to right (x, then y), adds the diagonals that cut the polygon into x-monotone pieces; each
piece is then triangulated in linear time with a stack. Every step is bounded whatever the input.
The sweep assumes rings that neither cross nor touch: when they do, it gives up (`None`), and so
does the final check that the triangles cover exactly the polygon's area.

Coordinates are the polygon's 2D projection, its rings back to back (exterior first, rings not
closed); triangles are indices into them.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

START, SPLIT, END, MERGE, BOTTOM, TOP = range(6)


class _Crossing(Exception):
    """The sweep met rings that cross or touch: its order of edges no longer holds."""


def triangulate_polygon(
    xy: NDArray[np.float64], ends: NDArray[np.int64]
) -> NDArray[np.int64] | None:
    """Triangles (k, 3) of the polygon whose rings end at `ends` (exterior first), as indices
    into `xy`; `None` when its rings cross or touch (no triangles can then be trusted)."""
    usable = _usable_rings(xy, np.asarray(ends, dtype=np.int64))
    if usable is None:
        return None
    kept, ends = usable
    xy = xy[kept]
    nxt, prv, area = _oriented_links(xy, ends)
    x, y = xy[:, 0], xy[:, 1]
    order = np.lexsort((y, x))
    rank = np.empty(len(xy), np.int64)
    rank[order] = np.arange(len(xy))
    kind = _kinds(x, y, nxt, prv, rank)
    xs, ys, ranks, nxts, prvs = x.tolist(), y.tolist(), rank.tolist(), nxt.tolist(), prv.tolist()
    try:
        diagonals = _monotone_diagonals(xs, ys, nxts, prvs, order, kind)
    except _Crossing:
        return None
    triangles: list[int] = []
    for piece in _pieces(xs, ys, nxts, prvs, diagonals):
        _triangulate_monotone(piece, ranks, xs, ys, triangles)
    t = np.array(triangles, dtype=np.int64).reshape(-1, 3)
    # the pieces must cover the polygon exactly: no gap, no overlap
    ab, ac = xy[t[:, 1]] - xy[t[:, 0]], xy[t[:, 2]] - xy[t[:, 0]]
    covered = np.abs(ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]).sum()
    if abs(covered - area.sum()) > 1e-9 * np.abs(area).sum() or len(t) > len(xy) + 2 * len(ends):
        return None
    return kept[t]


def _usable_rings(
    xy: NDArray[np.float64], ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """The vertices the sweep can take, and where their rings now end: a vertex equal to the one
    before it (an edge of no length) is left out, and so is a hole with no area (it takes none
    from the polygon); `None` when the exterior has no area."""
    sizes = np.diff(np.r_[0, ends])
    ring = np.repeat(np.arange(len(ends)), sizes)
    before = np.arange(len(xy)) - 1
    before[(ends - sizes)[sizes > 0]] = (ends - 1)[sizes > 0]
    kept = np.flatnonzero((xy != xy[before]).any(axis=1))
    sizes = np.bincount(ring[kept], minlength=len(ends))
    area = _ring_areas(xy[kept], np.cumsum(sizes))
    usable = (sizes >= 3) & (area != 0)
    if not usable[0]:
        return None
    return kept[usable[ring[kept]]], np.cumsum(sizes[usable])


def _ring_areas(xy: NDArray[np.float64], ends: NDArray[np.int64]) -> NDArray[np.float64]:
    """The doubled signed area of each ring (counter-clockwise positive; 0 for an empty ring)."""
    sizes = np.diff(np.r_[0, ends])
    starts = ends - sizes
    ring = np.repeat(np.arange(len(ends)), sizes)
    nxt = np.arange(len(xy)) + 1
    nxt[(ends - 1)[sizes > 0]] = starts[sizes > 0]
    rel = xy - xy[starts[ring]]  # relative to each ring's first vertex: no loss of precision
    cross = rel[:, 0] * rel[nxt, 1] - rel[nxt, 0] * rel[:, 1]
    return np.bincount(ring, weights=cross, minlength=len(ends)).astype(np.float64)


def _oriented_links(
    xy: NDArray[np.float64], ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Next and previous vertex of each vertex along its ring, with the polygon's inside on the
    left (the exterior counter-clockwise, holes clockwise, whatever the file's order), and each
    ring's doubled area in that orientation."""
    starts = np.r_[0, ends[:-1]]
    ring = np.repeat(np.arange(len(ends)), ends - starts)
    index = np.arange(len(xy))
    nxt = index + 1
    nxt[ends - 1] = starts
    prv = index - 1
    prv[starts] = ends - 1
    area = _ring_areas(xy, ends)
    flip = np.where(np.arange(len(ends)) == 0, area < 0, area > 0)
    area = np.where(flip, -area, area)
    return np.where(flip[ring], prv, nxt), np.where(flip[ring], nxt, prv), area


def _kinds(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    nxt: NDArray[np.int64],
    prv: NDArray[np.int64],
    rank: NDArray[np.int64],
) -> list[int]:
    """Each vertex's role in the sweep: start, split (both neighbours later), end, merge (both
    earlier; split and merge where the inside angle is reflex), or a vertex of the bottom side
    (the ring runs left to right, the inside above) or of the top side."""
    prev_later = rank[prv] > rank
    next_later = rank[nxt] > rank
    turn = (x - x[prv]) * (y[nxt] - y) - (y - y[prv]) * (x[nxt] - x)
    convex = turn > 0
    kind = np.where(
        prev_later & next_later,
        np.where(convex, START, SPLIT),
        np.where(
            ~prev_later & ~next_later,
            np.where(convex, END, MERGE),
            np.where(next_later, BOTTOM, TOP),
        ),
    )
    return kind.tolist()  # type: ignore[no-any-return]


def _monotone_diagonals(
    x: list[float],
    y: list[float],
    nxt: list[int],
    prv: list[int],
    order: NDArray[np.int64],
    kind: list[int],
) -> list[tuple[int, int]]:
    """The diagonals that cut the polygon into x-monotone pieces (de Berg's MakeMonotone, the
    sweep running along x). `status` holds the edges that cross the sweep line with the inside
    above them, bottom to top; an edge is named by its first vertex.

    Raises:
        _Crossing: an edge is not where the order says (rings that cross or touch).
    """
    merge = [k == MERGE for k in kind]
    helper = [-1] * len(x)
    status: list[int] = []
    diagonals: list[tuple[int, int]] = []

    def below(v: int) -> int:
        """How many edges of the status lie below vertex `v`."""
        vx, vy = x[v], y[v]
        lo, hi = 0, len(status)
        while lo < hi:
            mid = (lo + hi) // 2
            e = status[mid]
            ax, ay, b = x[e], y[e], nxt[e]
            if (x[b] - ax) * (vy - ay) - (y[b] - ay) * (vx - ax) > 0:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def insert(e: int) -> None:
        ax, ay, b = x[e], y[e], nxt[e]
        bx, by = x[b], y[b]
        lo, hi = 0, len(status)
        while lo < hi:
            mid = (lo + hi) // 2
            f = status[mid]
            fx, fy, g = x[f], y[f], nxt[f]
            dx, dy = x[g] - fx, y[g] - fy
            side = dx * (ay - fy) - dy * (ax - fx)
            if side > 0 or (side == 0 and dx * (by - fy) - dy * (bx - fx) > 0):
                lo = mid + 1
            else:
                hi = mid
        status.insert(lo, e)
        helper[e] = e

    def close(e: int, v: int) -> None:
        """Edge `e` ends at `v`: a merge vertex waiting as its helper gets its diagonal."""
        h = helper[e]
        if h >= 0 and merge[h]:
            diagonals.append((v, h))
        i = below(v)
        if i < len(status) and status[i] == e:
            del status[i]
        else:
            raise _Crossing

    def left_of(v: int, split: bool) -> None:
        """`v` becomes the helper of the edge below it, joined by a diagonal to the helper it
        replaces when that is a merge vertex (and always from a split vertex).

        Raises:
            _Crossing: no edge below (a hole outside the exterior).
        """
        j = below(v) - 1
        if j < 0:
            raise _Crossing
        e = status[j]
        h = helper[e]
        if split or merge[h]:
            diagonals.append((v, h))
        helper[e] = v

    for v in order.tolist():
        k = kind[v]
        if k == START:
            insert(v)
        elif k == END:
            close(prv[v], v)
        elif k == SPLIT:
            left_of(v, True)
            insert(v)
        elif k == MERGE:
            close(prv[v], v)
            left_of(v, False)
        elif k == BOTTOM:
            close(prv[v], v)
            insert(v)
        else:
            left_of(v, False)
    return diagonals


def _pieces(
    x: list[float],
    y: list[float],
    nxt: list[int],
    prv: list[int],
    diagonals: list[tuple[int, int]],
) -> list[list[int]]:
    """The faces of the polygon cut along the diagonals, each as its vertices in order (inside on
    the left). Each edge is walked at most once, so the walk ends whatever the diagonals."""
    out: dict[int, list[int]] = {}  # the diagonals at a vertex
    for a, b in diagonals:
        if a != b:
            out.setdefault(a, []).append(b)
            out.setdefault(b, []).append(a)
    # at a vertex with diagonals, the face left of u -> v goes on along the first edge out of v
    # clockwise from the way back to u: its neighbours in order of angle give it once for all
    then: dict[tuple[int, int], int] = {}
    for v, targets in out.items():
        around = sorted(
            {nxt[v], prv[v], *targets}, key=lambda w: math.atan2(y[w] - y[v], x[w] - x[v])
        )
        for i, u in enumerate(around):
            then[u, v] = around[i - 1]

    ring_walked = [False] * len(nxt)
    walked: set[tuple[int, int]] = set()  # diagonals, each way

    def walk(u: int, v: int) -> list[int]:
        first_u, first_v = u, v
        piece = []
        while True:
            if v == nxt[u] and not ring_walked[u]:
                ring_walked[u] = True
            elif (u, v) not in walked and v in out.get(u, ()):
                walked.add((u, v))
            else:
                return []  # back on an edge walked already: not a face
            piece.append(u)
            u, v = v, (then[u, v] if v in out else nxt[v])
            if u == first_u and v == first_v:
                return piece

    pieces = [walk(u, nxt[u]) for u in range(len(nxt)) if not ring_walked[u]]
    pieces += [walk(a, b) for a, bs in out.items() for b in bs if (a, b) not in walked]
    return [p for p in pieces if len(p) >= 3]


def _triangulate_monotone(
    piece: list[int], rank: list[int], x: list[float], y: list[float], out: list[int]
) -> None:
    """Triangles of an x-monotone piece (vertices in order, inside on the left) appended to
    `out`: the vertices taken left to right, a stack holding those not yet cut off."""
    n = len(piece)
    if n == 3:
        out.extend(piece)
        return
    ranks = [rank[v] for v in piece]
    first, last = ranks.index(min(ranks)), ranks.index(max(ranks))
    # from the leftmost vertex the piece runs along its bottom (the inside is on the left)
    bottom = [False] * n
    i = first
    while i != last:
        bottom[i] = True
        i = i + 1 if i + 1 < n else 0
    u = sorted(zip(ranks, piece, bottom, strict=True))
    stack = [(u[0][1], u[0][2]), (u[1][1], u[1][2])]
    for _, v, low in u[2:-1]:
        if low != stack[-1][1]:  # across: fan to every vertex on the stack
            for (a, _), (b, _) in zip(stack, stack[1:], strict=False):
                out.extend((v, a, b))
            stack = [stack[-1], (v, low)]
        else:  # same side: cut off what `v` sees, while the chain bends away from the inside
            top = stack.pop()
            side = 1.0 if low else -1.0
            while stack:
                s = stack[-1][0]
                t = top[0]
                if ((x[t] - x[s]) * (y[v] - y[s]) - (y[t] - y[s]) * (x[v] - x[s])) * side <= 0:
                    break
                out.extend((v, t, s))
                top = stack.pop()
            stack += [top, (v, low)]
    v = u[-1][1]
    for (a, _), (b, _) in zip(stack, stack[1:], strict=False):
        out.extend((v, a, b))
