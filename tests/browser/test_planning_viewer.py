"""Planning review in the 3D viewer, in real headless Chromium: a planner measures distances,
heights and areas, cuts the model with a horizontal plane, sees the sun's shadows on 大寒日,
switches to a design scheme or sets it beside the baseline, runs the analyses on a picked
building or parcel and sees their results on the model, and shares a link that reopens the
same view. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page
from pyproj import Transformer
from sqlalchemy import Engine

from cli.main import main
from tests.analysis.test_planning import CRS, X0, Y0, layer, rectangle
from tests.browser.conftest import ARTIFACTS, chromium, running_service

TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
# where the camera is: longitude, latitude (degrees) and height
CAMERA = """(() => {
  const c = Cesium.Cartographic.fromCartesian(window.cim.viewer.camera.positionWC);
  return [Cesium.Math.toDegrees(c.longitude), Cesium.Math.toDegrees(c.latitude), c.height];
})()"""


def lonlat(x: float, y: float) -> tuple[float, float]:
    """A point of the site (metres east and north of its corner) in longitude and latitude."""
    return TO_LONLAT.transform(X0 + x, Y0 + y)


@pytest.fixture(scope="module")
def service(
    new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Parcel A (100 m x 100 m): b1 (20 x 50 m, 30 m high) and b2 (20 x 50 m, 18 m); a house
    north of it; scheme A puts a 60 m slab in place of b2."""
    engine = new_database()
    folder = tmp_path_factory.mktemp("viewer-planning")
    env = {"CIM_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    b1 = (rectangle(10, 10, 20, 50), {"name": "b1", "height": 30.0, "floors": 10})
    baseline = layer(
        folder / "buildings.geojson",
        [
            b1,
            (rectangle(60, 10, 20, 50), {"name": "b2", "height": 18.0, "floors": 6}),
            (rectangle(40, 130, 20, 10), {"name": "house", "height": 3.0, "floors": 1}),
        ],
    )
    plan = layer(
        folder / "plan.geojson",
        [(rectangle(0, 0, 100, 100), {"地块编码": "A-01", "控高": 24, "容积率": 2.0})],
    )
    (folder / "a").mkdir()
    scheme = layer(
        folder / "a" / "buildings.geojson",
        [b1, (rectangle(0, 70, 100, 20), {"name": "slab", "height": 60.0, "floors": 20})],
    )
    for args in (
        [str(baseline), "--city", "jinan", "--crs", CRS, "--height-attr", "height"],
        [str(plan), "--city", "jinan", "--as", "parcels"],
        [str(scheme), "--city", "jinan", "--scenario", "scheme-a", "--height-attr", "height"],
    ):
        done = CliRunner().invoke(main, ["ingest", *args], env=env)
        assert done.exit_code == 0, done.output
    with running_service(engine) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def open_viewer(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function("window.cim && window.cim.ready === true", timeout=180_000)
    page.wait_for_function("window.cim.planningLoaded === true", timeout=60_000)
    return page, errors


@pytest.fixture
def page(browser: Browser, service: str) -> Iterator[Page]:
    page, errors = open_viewer(browser, f"{service}/?city=jinan")
    yield page
    assert not errors, errors
    page.close()


def look_down(page: Page, x: float, y: float, range_m: float) -> None:
    lon, lat = lonlat(x, y)
    page.evaluate(f"window.cim.lookDown({lon}, {lat}, 0, {range_m})")
    page.wait_for_function("window.cim.tileset.tilesLoaded", timeout=120_000)
    page.wait_for_timeout(400)


def on_screen(page: Page, x: float, y: float, z: float = 0.0) -> tuple[float, float]:
    lon, lat = lonlat(x, y)
    sx, sy = page.evaluate(f"window.cim.screenPosition({lon}, {lat}, {z})")
    return sx, sy


def test_measuring_distances_heights_and_areas(page: Page) -> None:
    look_down(page, 50, 50, 300)
    page.click("#measure-distance")
    for x, y in ((0, -20), (50, -20)):  # on the ground, south of the parcel
        page.mouse.click(*on_screen(page, x, y))
    distance = page.evaluate("window.cim.planning.measure.result.value")
    assert distance == pytest.approx(50.0, abs=1.0)
    assert "m" in page.inner_text("#measure-result")
    page.click("#measure-height")
    page.mouse.click(*on_screen(page, 20, 35, 30.0))  # b1's roof
    page.mouse.click(*on_screen(page, 45, 35, 0.0))  # the ground beside it
    assert page.evaluate("window.cim.planning.measure.result.value") == pytest.approx(30.0, abs=1.5)
    page.click("#measure-area")
    for x, y in ((-30, -40), (10, -40), (10, -10), (-30, -10)):  # 40 m x 30 m of ground
        page.mouse.click(*on_screen(page, x, y))
    assert page.evaluate("window.cim.planning.measure.result.value") == pytest.approx(
        1200, rel=0.03
    )
    assert "m²" in page.inner_text("#measure-result")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-measure-area.png"))
    page.click("#measure-clear")
    assert page.evaluate("window.cim.planning.measure.mode") is None


def test_a_horizontal_cut(page: Page) -> None:
    look_down(page, 20, 35, 200)
    x, y = on_screen(page, 20, 35, 30.0)
    assert page.evaluate(f"window.cim.pickHeight({x}, {y})") == pytest.approx(30.0, abs=1.0)
    page.check("#clip-on")
    page.fill("#clip-height", "10")
    page.dispatch_event("#clip-height", "input")
    page.wait_for_timeout(300)
    assert page.inner_text("#clip-value") == "10 m"
    page.screenshot(path=str(ARTIFACTS / "viewer-clipped.png"))
    # what is drawn at b1's centre is now at most the cut's height: its roof is gone
    assert page.evaluate(f"window.cim.pickHeight({x}, {y})") < 10.5
    page.uncheck("#clip-on")
    page.wait_for_timeout(300)
    assert page.evaluate(f"window.cim.pickHeight({x}, {y})") == pytest.approx(30.0, abs=1.0)


def brightness(page: Page, x: float, y: float) -> float:
    """Mean brightness of the 5 x 5 pixels around a screen point."""
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(page.screenshot())).convert("L")
    values = [
        image.getpixel((int(x) + dx, int(y) + dy)) for dx in range(-2, 3) for dy in range(-2, 3)
    ]
    return sum(values) / len(values)


def test_sun_shadows_on_the_standard_day(page: Page) -> None:
    days = page.evaluate("window.cim.planning.doc.days")
    assert page.input_value("#shadow-date") == days["大寒"]  # 大寒日 by default
    look_down(page, 20, 60, 250)
    # at 10:00 Beijing time on 大寒日 (9:37 true solar time at 117° E) the sun stands 22° high
    # in the south-east (azimuth 145°): b1 (30 m) throws its shadow 74 m to the north-west
    ground = on_screen(page, 0, 88)
    page.fill("#shadow-time", "10:00")
    page.dispatch_event("#shadow-time", "change")
    lit = brightness(page, *ground)
    page.check("#shadows-on")
    page.wait_for_timeout(1500)
    assert page.evaluate("window.cim.viewer.shadows") is True
    iso = page.evaluate("Cesium.JulianDate.toIso8601(window.cim.viewer.clock.currentTime, 0)")
    assert iso == f"{days['大寒']}T02:00:00Z"  # 10:00 Beijing time
    page.screenshot(path=str(ARTIFACTS / "viewer-shadows.png"))
    assert brightness(page, *ground) < lit * 0.85  # in b1's shadow


def fake_feature(source_id: str) -> str:
    """A stand-in tile feature of that id, for evaluating the tileset's style on."""
    value = f"(k === 'id' ? {source_id!r} : (k === 'type' ? 'Building' : undefined))"
    return f"({{ getProperty: (k) => {value} }})"


def test_schemes_switched_and_side_by_side(page: Page) -> None:
    look_down(page, 50, 60, 350)
    page.select_option("#scenario", "scheme-a")
    page.wait_for_function(
        "window.cim.planning.scheme && window.cim.planning.scheme.tilesLoaded", timeout=120_000
    )
    hidden = page.evaluate("[...window.cim.planning.hidden]")
    assert len(hidden) == 2  # b1 and b2 come from the scheme now
    show = page.evaluate(f"window.cim.tileset.style.show.evaluate({fake_feature(hidden[0])})")
    assert show is False
    # the slab is drawn where b2 stood, and what is picked there is the scheme's
    x, y = on_screen(page, 50, 80, 60.0)
    page.wait_for_timeout(500)
    picked = page.evaluate(
        f"(() => {{ const p = window.cim.viewer.scene.pick(new Cesium.Cartesian2({x}, {y}));"
        " return p && p.tileset === window.cim.planning.scheme ? p.getProperty('name') : null; })()"
    )
    assert picked == "slab"
    page.check("#compare-on")
    page.wait_for_function(
        "window.cim.planning.left && window.cim.planning.left.tilesLoaded", timeout=120_000
    )
    split = page.evaluate(
        "[window.cim.planning.left.splitDirection, window.cim.tileset.splitDirection,"
        " window.cim.planning.scheme.splitDirection, window.cim.viewer.scene.splitPosition]"
    )
    assert split == [-1, 1, 1, 0.5]  # LEFT baseline; RIGHT the scheme's view; in the middle
    page.screenshot(path=str(ARTIFACTS / "viewer-side-by-side.png"))


def wait_analysis(page: Page, process: str) -> dict[str, Any]:
    page.wait_for_function(
        f"window.cim.analysis && window.cim.analysis.process === {process!r}", timeout=60_000
    )
    return page.evaluate("window.cim.analysis")


def test_analyses_on_a_picked_building_and_parcel(page: Page, service: str) -> None:
    look_down(page, 50, 60, 300)
    page.mouse.click(*on_screen(page, 20, 35, 30.0))  # b1
    page.wait_for_selector("#analysis button[data-action=sunlight]", timeout=30_000)
    page.click("#analysis button[data-action=heightLimits]")
    out = wait_analysis(page, "height-limits")
    assert out["results"]["summary"]["buildings_breaching"] == 1
    [b1] = [b["building"] for b in out["results"]["breaches"]]
    colour = page.evaluate(
        f"window.cim.tileset.style.color.evaluateColor({fake_feature(b1)}).toCssHexString()"
    )
    assert colour.lower() == "#e0312b"  # marked red on the model
    page.click("#analysis button[data-action=sunlight]")
    out = wait_analysis(page, "sunlight")
    points = out["results"]["points"]
    assert page.evaluate("window.cim.planning.sun.length") == len(points) > 0
    failing = [p for p in points if not p["passes"]]
    assert page.locator("#failing-windows tr").count() == min(len(failing), 40)
    report = page.get_attribute("#report-link", "href")
    assert report == f"/jobs/{out['job']}/report?lang=zh"
    page.screenshot(path=str(ARTIFACTS / "viewer-sunlight.png"))
    # the parcel: shown, picked on its open ground, its indicators
    page.check("#parcels-on")
    page.wait_for_function("window.cim.parcelsShown === 1", timeout=30_000)
    x, y = on_screen(page, 50, 90)  # open ground of the parcel: once its polygon is drawn there
    page.wait_for_function(
        f"(() => {{ const p = window.cim.viewer.scene.pick(new Cesium.Cartesian2({x}, {y}));"
        " return !!(p && p.id && p.id.parcel); })()",
        timeout=30_000,
    )
    page.mouse.click(x, y)
    page.wait_for_selector("#analysis button[data-action=indicators]", timeout=30_000)
    assert "A-01" in page.inner_text("#details")
    page.click("#analysis button[data-action=indicators]")
    out = wait_analysis(page, "parcel-indicators")
    assert f"{out['results']['parcels'][0]['far']:.2f}" == "1.60"
    assert "1.60 / 2" in page.inner_text("#analysis table")


def test_a_shared_link_reopens_the_same_view(browser: Browser, page: Page) -> None:
    look_down(page, 30, 40, 260)
    page.select_option("#scenario", "scheme-a")
    page.wait_for_function("window.cim.planning.scheme !== null", timeout=60_000)
    page.check("#clip-on")
    page.fill("#clip-height", "20")
    page.dispatch_event("#clip-height", "input")
    page.check("#shadows-on")
    page.check("#parcels-on")
    page.wait_for_function("window.cim.parcelsShown === 1", timeout=30_000)
    link = page.evaluate("window.cim.shareLink()")
    camera = page.evaluate(CAMERA)
    again, errors = open_viewer(browser, link)
    try:
        again.wait_for_function("window.cim.restored === true", timeout=60_000)
        assert again.input_value("#scenario") == "scheme-a"
        assert again.is_checked("#clip-on") and again.input_value("#clip-height") == "20"
        assert again.is_checked("#shadows-on") and again.is_checked("#parcels-on")
        assert again.evaluate("window.cim.planning.clip.height") == 20
        there = again.evaluate(CAMERA)
        metres = math.hypot(
            (there[0] - camera[0]) * 111_320 * math.cos(math.radians(camera[1])),
            (there[1] - camera[1]) * 110_574,
        )
        assert metres < 1.0 and abs(there[2] - camera[2]) < 1.0
        assert not errors, errors
    finally:
        again.close()
