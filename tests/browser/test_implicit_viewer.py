"""CesiumJS in headless Chromium loads a city's 3D Tiles 1.1 implicit tileset (subtree files and
contents) and draws every point of a LAS file from it, as it does from the explicit tileset, and
again when a small content budget has the service give the points of over-full tiles out to
finer cells (tiles.split); screenshots are kept in test-artifacts/."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.browser.conftest import ARTIFACTS, chromium, running_service
from tests.ingest.test_pointcloud import LYON as LIDAR
from tests.ingest.test_pointcloud import las_header

BUDGET = "CIM_TILES_CONTENT_MAX_KB"
# the points Cesium has loaded of a tileset, and the subtree files it read, over every tile
LOADED = """(tileset) => {
  let points = 0, implicit = 0;
  const walk = (tile) => {
    if (tile.implicitSubtree) implicit += 1;
    if (tile.contentReady && tile.content) points += tile.content.pointsLength || 0;
    tile.children.forEach(walk);
  };
  walk(tileset.root);
  return [points, implicit];
}"""


@pytest.fixture(scope="module", params=[2000, 40], ids=["2MB", "split"])
def service(new_database, request) -> Iterator[tuple[str, int]]:  # type: ignore[no-untyped-def]
    engine: Engine = new_database()
    ingest_files(engine, [LIDAR], "lidar", options=ReadOptions(cell_size=10.0))
    before = os.environ.get(BUDGET)
    os.environ[BUDGET] = str(request.param)  # read by the app's TileSettings
    try:
        with running_service(engine) as base:
            yield base, request.param
    finally:
        if before is None:
            os.environ.pop(BUDGET)
        else:
            os.environ[BUDGET] = before


def test_cesium_draws_every_point_of_an_implicit_tileset(service: tuple[str, int]) -> None:
    base, budget = service
    url = "/collections/lidar/3dtiles/tileset.json?implicit=true"
    doc = httpx.get(f"{base}{url}").json()
    assert doc["root"]["implicitTiling"]["subdivisionScheme"] == "QUADTREE"
    split = budget < 2000
    assert doc["root"]["content"]["uri"].startswith("cells/" if split else "tiles/")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/?city=lidar")
        page.wait_for_function("window.cim && window.cim.ready === true", timeout=180_000)
        page.evaluate(
            """async (url) => {
          const tileset = await Cesium.Cesium3DTileset.fromUrl(url, { maximumScreenSpaceError: 0 });
          window.cim.tileset.show = false;
          window.cim.viewer.scene.primitives.add(tileset);
          window.cim.implicit = tileset;
        }""",
            url,
        )
        page.wait_for_function(
            f"window.cim.implicit.tilesLoaded && ({LOADED})(window.cim.implicit)[0] > 0",
            timeout=120_000,
        )
        page.wait_for_timeout(500)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = "split" if split else "whole"
        page.screenshot(path=str(ARTIFACTS / f"viewer-implicit-point-cloud-{name}.png"))
        points, subtrees = page.evaluate(f"({LOADED})(window.cim.implicit)")
        urls = page.evaluate(
            "(() => { const out = []; const walk = (t) => { if (t.content && t.content.url)"
            " out.push(t.content.url); t.children.forEach(walk); };"
            " walk(window.cim.implicit.root); return out; })()"
        )
        assert not errors, errors
    assert points == las_header(LIDAR)["count"]
    assert subtrees >= 1  # Cesium walked the tree from subtree files
    # the subtree files (placeholders' contents) and the contents, all under the right name
    assert any(u.split("?")[0].endswith(".subtree") for u in urls), urls
    glbs = [u for u in urls if u.split("?")[0].endswith(".glb")]
    folder = "/cells/" if split else "/tiles/"
    assert glbs and all(folder in u for u in glbs), glbs
