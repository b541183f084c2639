"""The 3D viewer in real headless Chromium: it loads a city's tileset, a click on a building shows
that building's id in the side panel, and the language switch works. A screenshot is kept in
test-artifacts/ (CIM_TEST_ARTIFACTS)."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page
from sqlalchemy import Engine

from demo.city import generate_city
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.browser.conftest import ARTIFACTS, chromium, running_service
from tests.ingest.test_pointcloud import LYON as LIDAR
from tests.ingest.test_pointcloud import las_header
from tests.tiles.test_textures import LYON

# the bytes of texture memory of every tile the viewer has loaded (Cesium's own count)
TEXTURE_BYTES = """(() => {
  let total = 0;
  const walk = (tile) => {
    if (tile.contentReady && tile.content) total += tile.content.texturesByteLength;
    tile.children.forEach(walk);
  };
  walk(window.cim.tileset.root);
  return total;
})()"""
# the points Cesium has loaded of a tileset, over every tile with content
POINTS_LOADED = """(tileset) => {
  let total = 0;
  const walk = (tile) => {
    if (tile.contentReady && tile.content) total += tile.content.pointsLength;
    tile.children.forEach(walk);
  };
  walk(tileset.root);
  return total;
}"""


@pytest.fixture(scope="module")
def service(new_database, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    engine: Engine = new_database()
    city = generate_city(tmp_path_factory.mktemp("demo") / "demo.city.json", buildings=300, seed=5)
    ingest_files(engine, [city.path], "370100", city_name_zh="济南市（示例）")
    ingest_files(engine, [LYON], "lyon", crs="EPSG:3946", city_name_en="Lyon (textured house)")
    ingest_files(engine, [LIDAR], "lidar", options=ReadOptions(cell_size=10.0))
    with running_service(engine) as base:
        yield base


def _above(feature: dict) -> tuple[float, float, float]:
    """Longitude and latitude of a feature's footprint centre, and its top height."""
    ring = feature["geometry"]["coordinates"][0][0]
    lon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
    lat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
    return lon, lat, feature["properties"]["height_max"]


@pytest.fixture(scope="module")
def page(service: str) -> Iterator[Page]:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{service}/?city=370100")
        page.wait_for_function("window.cim && window.cim.ready === true", timeout=180_000)
        assert not errors, errors
        yield page


def test_clicking_a_building_shows_its_id(page: Page, service: str) -> None:
    building = httpx.get(
        f"{service}/collections/370100/items",
        params={"type": "Building", "limit": 1, "offset": 150},
    ).json()
    feature = building["features"][0]
    lon, lat, top = _above(feature)
    page.evaluate(f"window.cim.lookDown({lon}, {lat}, {top}, 120)")
    page.wait_for_function("window.cim.tileset.tilesLoaded", timeout=120_000)
    page.wait_for_timeout(500)
    x, y = page.evaluate(f"window.cim.screenPosition({lon}, {lat}, {top})")
    page.mouse.click(x, y)
    page.wait_for_selector("#panel:not([hidden])", timeout=30_000)
    details = page.inner_text("#details")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-building-selected.png"))
    assert feature["id"] in details
    assert page.evaluate("window.cim.selected") == feature["id"]
    link = page.get_attribute("#feature-link", "href")
    assert link == f"/collections/370100/items/{feature['id']}"
    assert httpx.get(f"{service}{link}").json()["id"] == feature["id"]


def test_chinese_by_default_and_english_on_request(page: Page) -> None:
    assert page.inner_text("h1") == "城市信息模型"
    page.click("#lang")
    assert page.inner_text("h1") == "City Information Model"
    page.click("#lang")
    assert page.inner_text("h1") == "城市信息模型"


def test_colour_and_type_controls_restyle_the_tileset(page: Page) -> None:
    page.check("input[name=colour][value=height]")
    assert "height" in page.evaluate("JSON.stringify(window.cim.tileset.style.style)")
    page.uncheck("#types input[value=Road]")
    show = page.evaluate("window.cim.tileset.style.style.show")
    assert "Road" not in show and "Building" in show
    page.check("#types input[value=Road]")
    assert page.evaluate("window.cim.tileset.style.style.show") == "true"


def test_a_textured_building_is_drawn_with_its_texture(page: Page, service: str) -> None:
    house = httpx.get(f"{service}/collections/lyon/items").json()
    [feature] = [f for f in house["features"] if f["geometry"]]  # the part that has geometry
    lon, lat, top = _above(feature)
    page.goto(f"{service}/?city=lyon")
    page.wait_for_function("window.cim && window.cim.ready === true", timeout=180_000)
    page.evaluate(f"window.cim.lookDown({lon}, {lat}, {top}, 40)")
    page.wait_for_function("window.cim.tileset.tilesLoaded", timeout=120_000)
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "viewer-textured-house.png"
    page.screenshot(path=str(shot))
    # Cesium uploaded the house's texture to the GPU ...
    assert page.evaluate(TEXTURE_BYTES) > 0
    # ... and draws it: the roof under the camera shows the image's many colours, where an
    # untextured roof is one flat shade
    x, y = page.evaluate(f"window.cim.screenPosition({lon}, {lat}, {top})")
    box = page.screenshot(clip={"x": x - 20, "y": y - 20, "width": 40, "height": 40})
    colours = Image.open(BytesIO(box)).convert("RGB").getcolors(maxcolors=10_000)
    assert colours is not None and len(colours) > 100, colours and len(colours)
    page.mouse.click(x, y)
    page.wait_for_selector("#panel:not([hidden])", timeout=30_000)
    assert page.evaluate("window.cim.selected") is not None


def test_a_point_cloud_shows_every_point_in_both_tiles_versions(page: Page, service: str) -> None:
    """Cesium itself reads the GLB points (3D Tiles 1.1) and the pnts (1.0) of the LAS file and
    counts every point of it, once all tiles are refined."""
    page.goto(f"{service}/?city=lidar")
    page.wait_for_function("window.cim && window.cim.ready === true", timeout=180_000)
    page.evaluate("window.cim.tileset.maximumScreenSpaceError = 0")  # refine everything
    page.wait_for_function("window.cim.tileset.tilesLoaded", timeout=120_000)
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-point-cloud.png"))
    count = las_header(LIDAR)["count"]
    assert page.evaluate(f"({POINTS_LOADED})(window.cim.tileset)") == count
    loaded_1_0 = page.evaluate(
        """async (points) => {
      const url = "/collections/lidar/3dtiles/tileset.json?version=1.0";
      const tileset = await Cesium.Cesium3DTileset.fromUrl(url, { maximumScreenSpaceError: 0 });
      window.cim.tileset.show = false;
      window.cim.viewer.scene.primitives.add(tileset);
      window.cim.old = tileset;
      return true;
    }"""
    )
    assert loaded_1_0
    page.wait_for_function(
        f"window.cim.old.tilesLoaded && ({POINTS_LOADED})(window.cim.old) > 0", timeout=120_000
    )
    formats = page.evaluate(
        "(() => { const out = []; const walk = (t) => { if (t.content && t.content.url)"
        " out.push(t.content.url); t.children.forEach(walk); }; walk(window.cim.old.root);"
        " return out; })()"
    )
    assert formats and all(".pnts" in u for u in formats)
    assert page.evaluate(f"({POINTS_LOADED})(window.cim.old)") == count
