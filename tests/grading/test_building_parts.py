"""A building's best LoD counts its parts' geometries (CityJSON BuildingPart children), as the
model indicators define it: a building whose only geometry is an LoD 2.2 part is an LoD2
building, one with an LoD1 block of its own is not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from grading.cim_indicators import compute
from ingest.pipeline import ingest_files
from tests.cityjson_doc import cgcs2000_city

E0, N0 = 500_000.0, 4_057_000.0  # EPSG:4548 around Jinan


def _box(vertices: list[list[int]], x: int, y: int, lod: str) -> dict:
    """A 10 m cube at (x, y) metres from the origin as a CityJSON Solid."""
    base = len(vertices)
    for dz in (0, 10_000):
        for dx, dy in ((0, 0), (10_000, 0), (10_000, 10_000), (0, 10_000)):
            vertices.append([x * 1000 + dx, y * 1000 + dy, dz])
    b, t = [base + i for i in range(4)], [base + 4 + i for i in range(4)]
    faces = [[b[::-1]], [t]] + [[[b[i], b[(i + 1) % 4], t[(i + 1) % 4], t[i]]] for i in range(4)]
    return {"type": "Solid", "lod": lod, "boundaries": [faces]}


def test_a_part_at_lod2_makes_its_building_lod2(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    vertices: list[list[int]] = []
    objects = {
        "block": {"type": "Building", "geometry": [_box(vertices, 0, 0, "1")]},
        "house": {"type": "Building", "children": ["house-part"]},
        "house-part": {
            "type": "BuildingPart",
            "parents": ["house"],
            "geometry": [_box(vertices, 50, 0, "2.2")],
        },
    }
    doc = cgcs2000_city(objects, vertices, E0, N0)
    path = tmp_path / "parts.city.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    engine = new_database()
    ingest_files(engine, [path], "370100")
    [share] = compute(engine, "370100", names=("lod2_share",))
    assert share.inputs == {"buildings": 2, "lod2": 1} and share.value == 50.0
