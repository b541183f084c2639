"""Triangulation keeps area, holes and orientation; EWKB is read back by PostGIS as written."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, text

from cim.geometry import ewkb_boxes, ewkb_multipoints, ewkb_multipolygons, triangulate


def _area(points: np.ndarray, tris: np.ndarray) -> float:
    a, b, c = points[tris[:, 0]], points[tris[:, 1]], points[tris[:, 2]]
    return float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2)


def _normals(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = points[tris[:, 0]], points[tris[:, 1]], points[tris[:, 2]]
    n = np.cross(b - a, c - a)
    return n / np.linalg.norm(n, axis=1)[:, None]


def test_square_with_hole_in_a_tilted_plane() -> None:
    outer = [[0, 0], [10, 0], [10, 10], [0, 10]]
    hole = [[3, 3], [3, 7], [7, 7], [7, 3]]  # clockwise, as holes are
    flat = np.array(outer + hole, dtype=float)
    # tilt the plane and move it far from the origin, as Earth-centred coordinates are
    angle = np.radians(30)
    pts = np.column_stack((flat[:, 0], flat[:, 1] * np.cos(angle), flat[:, 1] * np.sin(angle)))
    pts += [3_900_000.0, 500_000.0, 5_000_000.0]
    tris, owner, bad = triangulate(pts, np.array([4, 4]), np.array([2]))
    assert bad == 0 and set(owner.tolist()) == {0}
    assert _area(pts, tris) == pytest.approx(100 - 16, rel=1e-6)
    expected = np.array([0, -np.sin(angle), np.cos(angle)])
    assert np.allclose(_normals(pts, tris), expected, atol=1e-6)


def test_concave_polygon_and_orientation_are_kept() -> None:
    # an L shape, clockwise seen from above: its triangles must face down
    ring = np.array([[0, 0, 0], [0, 10, 0], [4, 10, 0], [4, 4, 0], [10, 4, 0], [10, 0, 0]], float)
    tris, _, _ = triangulate(ring, np.array([6]), np.array([1]))
    assert _area(ring, tris) == pytest.approx(10 * 4 + 6 * 4)
    assert np.allclose(_normals(ring, tris), [0, 0, -1])


def test_concave_quad_is_not_split_wrongly() -> None:
    quad = np.array([[0, 0, 0], [10, 0, 0], [2, 2, 0], [0, 10, 0]], float)  # a dart
    tris, _, _ = triangulate(quad, np.array([4]), np.array([1]))
    assert _area(quad, tris) == pytest.approx(20.0)


def test_degenerate_polygons_are_counted_not_triangulated() -> None:
    pts = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    tris, owner, bad = triangulate(pts, np.array([3, 3]), np.array([1, 1]))
    assert bad == 1
    assert owner.tolist() == [1]


def test_many_polygons_keep_their_order() -> None:
    rng = np.random.default_rng(1)
    sizes = rng.integers(3, 9, size=50)
    pts = []
    for k, n in enumerate(sizes):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pts.append(np.column_stack((np.cos(t) + k * 5, np.sin(t), np.zeros(n))))
    points = np.concatenate(pts)
    tris, owner, bad = triangulate(points, sizes, np.ones(50, dtype=np.int64))
    assert bad == 0
    assert np.all(np.diff(owner) >= 0)
    assert np.bincount(owner).tolist() == (sizes - 2).tolist()


def test_ewkb_is_read_back_by_postgis(engine: Engine) -> None:
    coords = np.array(
        [
            [0, 0, 1],
            [1, 0, 1],
            [1, 1, 1],  # polygon 1
            [5, 5, 2],
            [6, 5, 2],
            [6, 6, 2],
            [5, 6, 2],  # polygon 2 exterior
            [5.2, 5.2, 2],
            [5.2, 5.4, 2],
            [5.4, 5.2, 2],  # its hole
            [9, 9, 9],
            [9.5, 9, 9],
        ]
    )  # a two-vertex ring, padded
    wkb = ewkb_multipolygons(
        coords, np.array([3, 4, 3, 2]), np.array([1, 2, 1]), np.array([2, 1]), 4979
    )
    points = ewkb_multipoints(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([2]), 4979)
    boxes = ewkb_boxes(np.array([[1.0, 2.0]]), np.array([3.0, 4.0])[None], 4326)
    with engine.connect() as conn:

        def read(b: bytes) -> tuple[str, int]:
            return tuple(
                conn.execute(
                    text("SELECT ST_AsText(g), ST_SRID(g) FROM (SELECT ST_GeomFromEWKB(:b) g) x"),
                    {"b": b},
                ).one()
            )

        assert read(wkb[0]) == (
            "MULTIPOLYGON Z (((0 0 1,1 0 1,1 1 1,0 0 1)),((5 5 2,6 5 2,6 6 2,"
            "5 6 2,5 5 2),(5.2 5.2 2,5.2 5.4 2,5.4 5.2 2,5.2 5.2 2)))",
            4979,
        )
        assert read(wkb[1]) == ("MULTIPOLYGON Z (((9 9 9,9.5 9 9,9.5 9 9,9 9 9)))", 4979)
        assert read(points[0]) == ("MULTIPOINT Z ((1 2 3),(4 5 6))", 4979)
        assert read(boxes[0]) == ("POLYGON((1 2,3 2,3 4,1 4,1 2))", 4326)
