"""The grading dashboard in real headless Chromium: the ranking table lists the cities in merit
order with their stars and awards, a city's radar chart renders with one axis per area, the
drill-down shows every indicator with its evidence, and the language switch works. A screenshot
is kept in test-artifacts/."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from cim.settings import ApiSettings
from grading import access, outcome, rounds, values
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.charts import radar
from grading.report import render_html
from grading.report_words import zh_reason
from grading.results import RoundResults
from tests.browser.conftest import ARTIFACTS, chromium, running_service

CATALOGUE = built_in("db37-3890.1-2020")
# four cities with different strengths: each value is the share of the way from the first to
# the last threshold (yes/no and grades follow the same strength)
STRENGTH = {"370100": 0.95, "370200": 0.6, "370300": 0.8, "370400": 0.3}
NAMES = {"370100": "济南市", "370200": "青岛市", "370300": "淄博市", "370400": "枣庄市"}


def _value(ind, s: float):  # type: ignore[no-untyped-def]
    m = ind.scoring.method
    if m == "yes_no":
        return s > 0.5
    if m == "levels":
        return ind.scoring.best_first()[0 if s > 0.9 else 1 if s > 0.7 else 2]
    t = ind.scoring.thresholds
    value = t[0] + (t[4] - t[0]) * s
    return round(value) if ind.range.integer else value  # counts are whole


def _round(engine: Engine) -> dict:
    """The test round, filled; returns its results."""
    admin = access.cli_actor()
    cities = [rounds.CityEntry(code, name, code) for code, name in NAMES.items()]
    rounds.create_round(
        engine,
        admin,
        "web-2026",
        "dashboard test",
        2026,
        CATALOGUE,
        built_in_policy("shandong-example"),
        cities,
    )
    values.set_values(
        engine,
        admin,
        "web-2026",
        [
            values.ValueEntry(code, ind.id, _value(ind, s), source="fixture")
            for code, s in STRENGTH.items()
            for ind in CATALOGUE.indicators
        ],
    )
    return outcome.results(engine, "web-2026").to_dict()


@pytest.fixture(scope="module")
def service(new_database: Callable[[], Engine]) -> Iterator[tuple[str, dict]]:
    engine = new_database()
    expected = _round(engine)
    with running_service(engine, ApiSettings(grading_public_drafts=True)) as base:
        yield base, expected


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def page(service: tuple[str, dict], browser: Browser) -> Iterator[Page]:
    base, _ = service
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/grading/dashboard")
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    assert not errors, errors
    yield page
    page.close()


def test_ranking_table_lists_cities_in_order(page: Page, service: tuple[str, dict]) -> None:
    _, expected = service
    codes = page.eval_on_selector_all("#ranking tbody tr", "rows => rows.map(r => r.dataset.code)")
    assert codes == [c["code"] for c in expected["cities"]]
    assert codes[0] == "370100" and codes[-1] == "370400"  # strongest first, weakest last
    first = page.inner_text("#ranking tbody tr:first-child")
    top = expected["cities"][0]
    assert "★" * top["stars"] in first and f"{top['amount']:,.0f}" in first
    assert "择优排序" in page.inner_text("#policy")


def test_a_city_radar_chart_renders(page: Page, service: tuple[str, dict]) -> None:
    _, expected = service
    page.click("#ranking tbody tr[data-code='370300']")
    page.wait_for_selector("#radar[data-code='370300'] svg polygon.radar-area")
    assert "370300" in page.inner_text("#detail-title")
    box = page.locator("#radar svg").bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 200
    points = page.get_attribute("#radar svg polygon.radar-area", "points")
    assert points is not None and len(points.split()) == 5  # the five regular areas
    labels = page.eval_on_selector_all("#radar svg text", "ts => ts.map(t => t.textContent)")
    assert "数字惠民" in labels and "淄博市" in labels
    rows = page.eval_on_selector_all(
        "#indicators tbody tr", "rows => rows.map(r => r.dataset.indicator)"
    )
    assert rows == [i.id for i in CATALOGUE.indicators]
    zibo = next(c for c in expected["cities"] if c["code"] == "370300")
    first = page.inner_text("#indicators tbody tr:first-child")
    # the reason, in Chinese as the report says it (the unit too: "score" is 分)
    names = {a.id: a.name_zh for a in CATALOGUE.areas}
    names |= {i.id: i.name_zh for i in CATALOGUE.indicators}
    reason = zh_reason(zibo["indicators"][0]["reason_zh"], names, CATALOGUE.indicators[0].unit)
    assert reason in first and " 分 达到" in reason and "score" not in first
    assert f"{zibo['score']:.2f}" in page.inner_text("#areas")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "grading-dashboard.png"))


def test_the_ranking_shows_each_area_subtotal(page: Page, service: tuple[str, dict]) -> None:
    _, expected = service
    heads = page.eval_on_selector_all("#ranking thead th.area", "ths => ths.map(t => t.innerText)")
    assert [h.split("\n")[0] for h in heads] == [a.name_zh for a in CATALOGUE.areas]
    for city in expected["cities"]:
        shown = page.eval_on_selector_all(
            f"#ranking tbody tr[data-code='{city['code']}'] td.area",
            "tds => tds.map(t => [t.dataset.area, t.textContent])",
        )
        assert shown == [[a["id"], f"{a['points']:.2f}"] for a in city["areas"]], city["code"]


# every label of every radar chart under `root` that is not wholly inside the drawing: its
# box in the SVG's own units (getBBox) against the viewBox, and on the screen against the SVG's
CLIPPED = """root => [...root.querySelectorAll("svg.radar")].map(svg => {
  const vb = svg.viewBox.baseVal, outer = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll("text")];
  const out = texts.filter(t => {
    const b = t.getBBox(), r = t.getBoundingClientRect();
    return b.x < vb.x || b.y < vb.y || b.x + b.width > vb.x + vb.width
      || b.y + b.height > vb.y + vb.height || r.left < outer.left - 0.5
      || r.top < outer.top - 0.5 || r.right > outer.right + 0.5 || r.bottom > outer.bottom + 0.5;
  }).map(t => {
    const b = t.getBBox();
    return `${t.textContent} [${[b.x, b.y, b.width, b.height].map(Math.round)}] outside `
      + `[${[vb.x, vb.y, vb.width, vb.height]}]`;
  });
  return {labels: texts.length, out};
})"""


def _clipped(page: Page, selector: str = "body") -> list[str]:
    charts = page.eval_on_selector(selector, CLIPPED)
    assert charts and all(c["labels"] > 1 for c in charts)  # there is something to check
    return [label for c in charts for label in c["out"]]


def test_radar_labels_are_never_cut_off(page: Page) -> None:
    for lang in ("zh", "en"):
        if lang == "en":
            page.click("#lang")
            page.wait_for_selector("#radar svg text:text('Digital government')")
        page.click("#ranking tbody tr[data-code='370300']")
        page.wait_for_selector("#radar[data-code='370300'] svg polygon.radar-area")
        assert not _clipped(page, "#radar"), lang
    longest = max((a.name_en for a in CATALOGUE.areas if not a.bonus), key=len)
    labels = page.eval_on_selector_all("#radar svg text", "ts => ts.map(t => t.textContent)")
    assert longest in labels  # "Digital services for citizens", on two lines
    page.click("#lang")
    page.wait_for_function("document.querySelector('h1').textContent === '新型智慧城市星级评价'")


def test_radar_labels_fit_for_the_longest_area_names(
    browser: Browser, service: tuple[str, dict]
) -> None:
    """The chart itself, for every built-in catalogue in both languages and for names longer
    than any, and the report's charts (zh and en) as the browser lays them out."""
    _, expected = service
    page = browser.new_page()
    font = "font-family: 'Noto Sans CJK SC', 'Noto Sans SC', system-ui, sans-serif"
    names = [
        [a.name_zh if lang == "zh" else a.name_en for a in built_in(c).areas if not a.bonus]
        for c in ("db37-3890.1-2020", "gbt-33356-2016")
        for lang in ("zh", "en")
    ]
    names.append(
        [
            "城市信息模型平台建设与应用成效评价领域",
            "A very long area name: Digital services for "
            "citizens and businesses across the whole city",
            "Supercalifragilistic",
            "短",
        ]
    )
    charts = "".join(radar(n, [0.5] * len(n), title="淄博市 Zibo") for n in names)
    page.set_content(f'<html><body style="{font}">{charts}</body></html>')
    assert not _clipped(page)
    results = RoundResults.from_dict(expected)
    for lang in ("zh", "en"):
        page.set_content(render_html(results, {"status": "draft", "results_sha256": None}, lang))
        assert not _clipped(page)
    # and the check sees a label that is cut off
    page.set_content(
        '<svg class="radar" width="100" height="40" viewBox="0 0 100 40"><text x="10" y="20">'
        'Digital services for citizens</text><text x="10" y="35">ok</text></svg>'
    )
    [cut] = _clipped(page)
    assert cut.startswith("Digital services for citizens [") and cut.endswith("[0,0,100,40]")
    page.close()


def test_chinese_by_default_and_english_on_request(page: Page) -> None:
    assert page.inner_text("h1") == "新型智慧城市星级评价"
    page.click("#lang")
    page.wait_for_function("document.querySelector('h1').textContent === 'Smart-city star rating'")
    page.wait_for_selector("#radar svg text:text('Digital government')")
    page.click("#lang")
    page.wait_for_function("document.querySelector('h1').textContent === '新型智慧城市星级评价'")


def test_private_grading_asks_for_a_key(
    new_database: Callable[[], Engine], browser: Browser
) -> None:
    engine = new_database()
    expected = _round(engine)
    _, key = access.create_key(engine, access.cli_actor(), "committee member", "viewer")
    with running_service(engine, ApiSettings(grading_private=True)) as base:
        page = browser.new_page()
        page.goto(f"{base}/grading/dashboard")
        page.wait_for_selector("#key-form:not([hidden])")
        assert "API 密钥" in page.inner_text("#notice")
        assert page.eval_on_selector_all("#ranking tbody tr", "rows => rows.length") == 0
        page.fill("#key", key)
        page.click("#key-form button")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("#radar[data-code] svg")
        codes = page.eval_on_selector_all(
            "#ranking tbody tr", "rows => rows.map(r => r.dataset.code)"
        )
        assert codes == [c["code"] for c in expected["cities"]]
