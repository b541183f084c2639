"""How the ingest cuts a stream of objects into batches: by object count, or by the vertices the
objects refer to (point-cloud cells are large) — not by the size of a vertex array they share (a
CityJSON file's objects all index one array)."""

from __future__ import annotations

import numpy as np

from ingest.model import SourceGeometry, SourceObject
from ingest.pipeline import MAX_BATCH_VERTICES, _batches


def _object(n: int, vertices: np.ndarray, indices: list[int] | range) -> SourceObject:
    geometry = SourceGeometry("MultiPoint", None, "point", vertices, indices, [], [], {})
    return SourceObject(f"o{n}", "Thing", {}, [], [], [geometry])


def test_objects_sharing_a_large_vertex_array_are_batched_by_count() -> None:
    shared = np.zeros((2 * MAX_BATCH_VERTICES, 3))
    objects = [_object(n, shared, [n, n + 1, n + 2]) for n in range(250)]
    assert [len(b) for b in _batches(objects, 100)] == [100, 100, 50]


def test_objects_with_many_vertices_of_their_own_make_smaller_batches() -> None:
    own = np.zeros((MAX_BATCH_VERTICES // 4, 3))
    objects = [_object(n, own, range(len(own))) for n in range(10)]
    assert [len(b) for b in _batches(objects, 100)] == [4, 4, 2]
