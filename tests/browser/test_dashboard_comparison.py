"""The dashboard of a round linked to its previous round, in real headless Chromium: the ranking
shows each city's change since then, a city's area table the change of each area, and "CIM
platform in place" lists the function groups declared with their evidence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine

from cim.settings import ApiSettings
from demo.round import PLATFORM
from grading import access, computed, rounds, values
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.comparison import compare
from grading.evidence import EvidenceFile
from grading.exemptions import exempt
from grading.platform import FUNCTION_GROUPS, declare_function
from tests.browser.conftest import chromium, running_service

ADMIN = access.cli_actor("王委员")
CITIES = {"370100": "济南市", "370200": "青岛市"}
ONLINE = {2025: {"370100": 80, "370200": 97}, 2026: {"370100": 99, "370200": 70}}


def _round(engine: Engine, round_id: str, year: int) -> None:
    cities = [rounds.CityEntry(code, name, code) for code, name in CITIES.items()]
    catalogue, policy = built_in("db37-3890.1-2020"), built_in_policy("shandong-example")
    rounds.create_round(engine, ADMIN, round_id, round_id, year, catalogue, policy, cities)
    values.set_values(
        engine,
        ADMIN,
        round_id,
        [values.ValueEntry(c, "zhengfu.online", v, source="t") for c, v in ONLINE[year].items()],
    )
    for code in CITIES:
        exempt(engine, ADMIN, round_id, code, None, "test")


@pytest.fixture(scope="module")
def service(new_database: Callable[[], Engine]) -> Iterator[tuple[str, Any]]:
    engine = new_database()
    _round(engine, "web-2025", 2025)
    for who, to in (("a", "submitted"), ("b", "reviewed")):
        rounds.move(engine, access.Actor(f"key:{who}", "reviewer"), "web-2025", to, "t")
    rounds.move(engine, ADMIN, "web-2025", "final", "t")
    _round(engine, "web-2026", 2026)
    rounds.link_previous(engine, ADMIN, "web-2026", "web-2025", "上一轮")
    proof = EvidenceFile(PLATFORM.name, PLATFORM.read_bytes(), "text/plain")
    for group in list(FUNCTION_GROUPS)[:6]:
        declare_function(engine, ADMIN, "web-2026", "370100", group, proof, "验收")
    computed.enter_cim_indicators(engine, ADMIN, "web-2026", "370100", only=("sheshi.cim",))
    with running_service(engine, ApiSettings(grading_public_drafts=True)) as base:
        yield base, compare(engine, "web-2026")


@pytest.fixture(scope="module")
def page(service: tuple[str, Any]) -> Iterator[Page]:
    base, _ = service
    with chromium() as browser:
        page = _open(browser, f"{base}/grading/dashboard?round=web-2026")
        yield page
        page.close()


def _open(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("localStorage.setItem('cim.lang', 'zh')")
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    assert not errors, errors
    return page


def test_the_ranking_shows_each_city_since_the_previous_round(
    page: Page, service: tuple[str, Any]
) -> None:
    _, cmp = service
    assert page.inner_text("#ranking thead th.previous") == "较上一轮"
    for city in cmp.cities:
        moved = city.rank_change
        arrow = "＝" if not moved else f"↑{moved}" if moved > 0 else f"↓{-moved}"
        want = f"{arrow} {city.score_change:+.2f}"
        cell = page.inner_text(f'#ranking tbody tr[data-code="{city.code}"] td:last-child')
        assert cell == want, (city.code, cell, want)
    assert {c.code: c.rank_change for c in cmp.cities} == {"370100": 1, "370200": -1}


def _show(page: Page, code: str) -> None:
    """Open a city and wait until its detail is drawn (the radar is marked last)."""
    page.evaluate("document.getElementById('radar').dataset.code = ''")
    page.click(f'#ranking tbody tr[data-code="{code}"]')
    page.wait_for_selector(f'#radar[data-code="{code}"]')


def test_a_city_shows_the_change_of_each_area(page: Page, service: tuple[str, Any]) -> None:
    _, cmp = service
    _show(page, "370100")
    jinan = {c.code: c for c in cmp.cities}["370100"]
    for area in jinan.areas:
        shown = page.inner_text(f'#areas tbody td[data-area="{area.id}"]')
        assert shown == f"{area.change:+.2f}", (area.id, shown)


def test_the_platform_lists_its_function_groups_with_evidence(page: Page) -> None:
    _show(page, "370100")
    row = page.wait_for_selector('#indicators tr[data-indicator="sheshi.cim"]')
    assert row is not None
    assert row.inner_text().count("否") >= 1  # six of seven: not in place
    assert "平台功能组 6/7" in row.inner_text()
    row.query_selector("details summary").click()  # type: ignore[union-attr]
    items = row.query_selector_all("details li")
    texts = [i.inner_text() for i in items]
    assert len(items) == 7 and texts[-1] == "开发接口: 缺少"
    links = row.query_selector_all("details li a")
    assert {a.inner_text() for a in links} == {PLATFORM.name}
