"""Point clouds without colour are drawn in class colours, never black (issue 14, point 9).

The real Lyon LiDAR extract (LAS 1.2, point format 3, coloured) is written here twice more with
laspy: once with every RGB field 0 0 0 (as files come whose format has colour fields no one
filled) and once in point format 1, which has no colour fields. Both are drawn, in 3D Tiles 1.1
GLB and 1.0 pnts, with each point in the colour of its ASPRS class (tiles/points.py), and the
ingest report says so; the coloured original keeps its own colours (test_pointcloud_tiles)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.ingest.test_pointcloud import LYON
from tests.tiles.conftest import _accessor, assert_served_tilesets_valid, tiles_of
from tests.tiles.test_tilesets import read_pnts
from tiles.gltf import read_glb
from tiles.meshopt import decompress
from tiles.points import CLASS_COLOURS, OTHER_CLASS, las_attributes

CELL = 10.0


def _palette(classes: np.ndarray) -> np.ndarray:
    return np.array([CLASS_COLOURS.get(int(c), OTHER_CLASS) for c in classes], dtype=np.int64)


@pytest.fixture(scope="module")
def variants(
    new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory
) -> tuple[TestClient, dict[str, list[str]], int]:
    """The Lyon cloud with its colours zeroed ("dark") and in point format 1 ("plain"),
    each ingested into its own city: the client, each city's warnings, the point count."""
    import laspy

    folder = tmp_path_factory.mktemp("colours")
    las = laspy.read(str(LYON))
    assert las.header.point_format.id == 3 and las.red.any()  # a coloured original
    las.red[:] = 0
    las.green[:] = 0
    las.blue[:] = 0
    las.write(str(folder / "dark.las"))
    plain = laspy.convert(laspy.read(str(LYON)), point_format_id=1)
    assert "red" not in plain.point_format.dimension_names
    plain.write(str(folder / "plain.las"))
    engine = new_database()
    warnings = {}
    for city in ("dark", "plain"):
        [report] = ingest_files(
            engine, [folder / f"{city}.las"], city, options=ReadOptions(cell_size=CELL)
        )
        warnings[city] = report.warnings
    return TestClient(create_app(engine=engine)), warnings, len(las.points)


def _tile_contents(client: TestClient, city: str, version: str) -> list[bytes]:
    query = "?version=1.0" if version == "1.0" else ""
    tileset = client.get(f"/collections/{city}/3dtiles/tileset.json{query}").json()
    return [
        client.get(f"/collections/{city}/3dtiles/{t['content']['uri']}").content
        for t in tiles_of(tileset)
        if "content" in t
    ]


@pytest.mark.parametrize("city", ["dark", "plain"])
def test_points_without_colour_are_drawn_by_class_in_glb(
    variants: tuple[TestClient, dict[str, list[str]], int], city: str
) -> None:
    client, _, total = variants
    colours, classes = [], []
    for data in _tile_contents(client, city, "1.1"):
        doc, binary = read_glb(decompress(data))
        [points] = [p for p in doc["meshes"][0]["primitives"] if p["mode"] == 0]
        colours.append(np.round(_accessor(doc, binary, points["attributes"]["COLOR_0"]) * 255))
        classes.append(_accessor(doc, binary, points["attributes"]["_CLASSIFICATION"]))
    rgb = np.concatenate(colours)[:, :3].astype(np.int64)
    kinds = np.concatenate(classes).astype(np.int64)
    assert len(rgb) == total
    assert sorted(set(kinds.tolist())) == [1, 2, 5]  # MANIFEST: classes 1, 2 and 5
    assert (rgb == _palette(kinds)).all()
    assert rgb.any(axis=1).all()  # no point is black


@pytest.mark.parametrize("city", ["dark", "plain"])
def test_points_without_colour_are_drawn_by_class_in_pnts(
    variants: tuple[TestClient, dict[str, list[str]], int], city: str
) -> None:
    client, _, total = variants
    rgb, kinds = [], []
    for data in _tile_contents(client, city, "1.0"):
        _, arrays = read_pnts(data)
        rgb.append(arrays["RGB"].astype(np.int64))
        kinds.append(arrays["Classification"].astype(np.int64))
    assert sum(len(k) for k in kinds) == total
    assert (np.concatenate(rgb) == _palette(np.concatenate(kinds))).all()


def test_the_report_says_which_points_are_drawn_by_class(
    variants: tuple[TestClient, dict[str, list[str]], int],
) -> None:
    _, warnings, total = variants
    assert any(
        f"point format 3 has colour fields, but every point's RGB is 0 0 0 ({total} points)" in w
        for w in warnings["dark"]
    ), warnings["dark"]
    assert any("point format 1 has no colour" in w for w in warnings["plain"]), warnings["plain"]


def test_a_cloud_object_is_drawn_by_class_only_when_all_its_points_are_0_0_0() -> None:
    """The rule is per cloud object (a cell): a coloured cell's few black points stay black
    (black is a colour there), a cell whose every point is 0 0 0 has no colour."""
    import laspy

    las = laspy.read(str(LYON))
    records = np.asarray(las.points.array)[:100].copy()
    layout = {
        "format": "LAS",
        "dtype": [[n, records.dtype.fields[n][0].str] for n in records.dtype.names],
    }
    classes = records["raw_classification"] & 0x1F
    some = records.copy()
    for c in ("red", "green", "blue"):
        some[c][:10] = 0
    drawn = las_attributes(some.tobytes(), {**layout, "rgb_bits": 16}).colours.astype(np.int64)
    assert (drawn[:10] == 0).all()
    assert (
        drawn[10:] == np.column_stack([some[c][10:] >> 8 for c in ("red", "green", "blue")])
    ).all()
    none = records.copy()
    for c in ("red", "green", "blue"):
        none[c][:] = 0
    drawn = las_attributes(none.tobytes(), {**layout, "rgb_bits": 16}).colours.astype(np.int64)
    assert (drawn == _palette(classes)).all()


def test_the_class_coloured_tilesets_pass_the_3d_tiles_validator(
    variants: tuple[TestClient, dict[str, list[str]], int], tmp_path: Path
) -> None:
    client, _, _ = variants
    reports = assert_served_tilesets_valid(client.app.state.engine, ["dark", "plain"], tmp_path)
    assert all(r["numErrors"] == 0 for r in reports.values())
