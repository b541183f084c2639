"""The committee's papers: the Chinese report says everything in Chinese (names, units, reasons,
sources, the annex's basis notes, the status), the summary shows each city's subtotal per area,
and in the PDF no table row is split across two pages.

The round is the demo round's 16 cities and values (demo/data), assessed without a database, with
Jinan's model indicators as the service computes them (their sources are the service's own
English words), and one value the committee chose between two.
"""

from __future__ import annotations

import ast
import hashlib
import html
import inspect
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from demo.round import VALUES
from grading import scoring
from grading.areas import DeclaredArea
from grading.assessment import round_results
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.cim_indicators import Computed
from grading.computed import computed_source
from grading.regions import SHANDONG
from grading.report import render_html
from grading.report_words import zh_basis, zh_reason, zh_source
from grading.results import RoundResults
from grading.templates import read_values
from grading.values import Keep

# Latin words a Chinese report may show: names of things that have no other (SHA-256, the CIM,
# LoD/LOD2, IoT, IPv6, PDF); a standard's code (DB37/T 3890.1-2020) is left out as a whole
PROPER_NOUNS = {"SHA", "CIM", "LoD", "LOD", "IoT", "IPv", "PDF"}
STANDARD = re.compile(r"\b[A-Z]+\d*/T ?[\d.]+(?:-\d{4})?")
URL = re.compile(r"https?://\S+")
FILE_NAME = re.compile(r"[\w.-]+\.(?:csv|xlsx|pdf|png|jpe?g|json|geojson|gpkg|zip|docx?|txt)\b")
HASH = re.compile(r"\b[0-9a-f]{7,}\b")
# Jinan's model indicators, with the sources grading.computed writes for them
AREA = DeclaredArea(
    city="370100",
    kind="built_up",
    name="济南市建成区",
    area_km2=1016.5,
    source_crs="EPSG:4548",
    features=1,
    evidence_sha256="0123456789ab" + "0" * 52,
    filename="jinan-built-up.geojson",
    reason="委员会提供",
    declared_by="cli:王委员",
    declared_at=datetime(2026, 11, 30, tzinfo=UTC),
    geojson="{}",
)


def source(name: str) -> str:
    inputs = {"offered": 6, "missing": ["analysis"]} if name == "cim_platform" else {}
    return computed_source(Computed(name, None, "", inputs, {}), "370100", AREA)


COMPUTED = {
    "zhengfu.video": (72.5, source("camera_coverage")),
    "sheshi.5g": (96.1, source("g5_building_coverage")),
    "sheshi.5g_density": (6.3, source("g5_density")),
    "sheshi.lighting": (41.0, source("smart_light_ratio")),
    "sheshi.iot": (22.0, source("iot_density")),
    "sheshi.cim": (True, source("cim_platform")),
    "sheshi.3d_coverage": (88.0, source("model_coverage")),
    # sheshi.lod2 not computed: Jinan misses one value
}


def demo_round() -> RoundResults:
    """The demo round's results, assessed from its value file (no database)."""
    catalogue = built_in("db37-3890.1-2020")
    entries, files, _ = read_values(VALUES.read_bytes(), VALUES.name, catalogue, VALUES.parent)
    names = {hashlib.sha256(f.content).hexdigest(): f.filename for f in files}
    values: dict[str, dict[str, dict[str, Any]]] = {}
    for e in entries:
        given = {
            k: None if isinstance(getattr(e, k), Keep) else getattr(e, k)
            for k in ("value", "source", "link", "note", "evidence_sha256")
        }
        given["evidence_filename"] = names.get(given["evidence_sha256"] or "")
        given["entered_by"] = "cli:demo"
        values.setdefault(e.city, {})[e.indicator] = given
    for ind, (value, source) in COMPUTED.items():
        computed = {"query": "SELECT …", "parameters": {}, "inputs": {}}
        values["370100"][ind] = {"value": value, "source": source, "computed": computed}
    # the committee chose the computed camera coverage over the 68 % Jinan reported
    values["370100"]["zhengfu.video"] |= {
        "alternative": {"kind": "reported", "value": 68.0, "source": "import values.csv"},
        "choice": {"counts": "computed", "reason": "模型计算有查询可查", "by": "cli:王委员"},
    }
    cities = [
        {"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en}
        | {"previous_stars": None, "previous_total": None}
        for c in SHANDONG
    ]
    meta = {"id": "demo-2026", "title": "山东省新型智慧城市星级评价（示例数据） 2026", "year": 2026}
    return round_results(meta, catalogue, built_in_policy("shandong-example"), cities, values)


@pytest.fixture(scope="module")
def results() -> RoundResults:
    return demo_round()


def visible_text(page: str) -> str:
    """What a reader sees of an HTML page: the body's text (SVG labels too), no markup."""
    body = re.sub(r"(?s)<head>.*?</head>|<style.*?</style>|<script.*?</script>", " ", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def ids_of(results: RoundResults) -> set[str]:
    """What a report prints as it is: the ids of the round, catalogue, policy, areas,
    indicators, and who entered or chose a value."""
    cat = results.catalogue
    ids = {results.round.id, results.round.title, cat.id, results.policy["id"]}
    ids |= {a.id for a in cat.areas} | {i.id for i in cat.indicators}
    for city in results.cities:
        for s in city.indicators:
            ids |= {s.entered_by or "", (s.choice or {}).get("by", "")}
    return ids - {""}


def english_words(text: str, ids: set[str]) -> list[str]:
    """Each run of three or more Latin letters in `text` that is not a proper noun, an id, a
    standard's code, a URL, a file name or a hash, with the text around it."""
    ignored = [m.span() for p in (STANDARD, URL, FILE_NAME, HASH) for m in p.finditer(text)]
    for known in sorted(ids, key=len, reverse=True):
        ignored += [m.span() for m in re.finditer(rf"(?<![\w.]){re.escape(known)}(?![\w.])", text)]
    found = []
    for m in re.finditer(r"[A-Za-z]{3,}", text):
        if m.group(0) in PROPER_NOUNS or any(a <= m.start() and m.end() <= b for a, b in ignored):
            continue
        found.append(" ".join(text[max(0, m.start() - 30) : m.end() + 30].split()))
    return found


def test_the_chinese_report_is_in_chinese_throughout(results: RoundResults) -> None:
    for info in (
        {"status": "draft", "results_sha256": None},
        {"status": "final", "results_sha256": results.sha256()},
    ):
        text = visible_text(render_html(results, info, "zh"))
        found = english_words(text, ids_of(results))
        assert not found, "English in the Chinese report:\n" + "\n".join(found)
        # what used to be English: units, status, sources, the annex, ids in reasons
        assert "个/平方公里" in text
        assert "城市 370100 的城市信息模型：公共视频监控道路覆盖率" in text
        assert "建成区" in text
        assert "已凭佐证申报 6/7 个功能组（CJJ/T 315-2022 §4.3.2）；缺少：分析应用" in text
        assert "指标「智慧教育」的权重与分级阈值" in text and "奖补政策的总预算" in text
        assert ("草稿" if info["status"] == "draft" else "已定稿") in text


def test_the_english_report_stays_english(results: RoundResults) -> None:
    text = visible_text(render_html(results, {"status": "draft", "results_sha256": None}, "en"))
    assert "Digital services for citizens" in text and "policy budget" in text
    assert "CIM model of city 370100: camera_coverage" in text
    assert "reaches level" in text and "数字惠民" not in text


def test_the_summary_shows_each_area_subtotal(results: RoundResults) -> None:
    page = render_html(results, {"status": "draft", "results_sha256": None}, "zh")
    summary = page.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    heads = re.findall(r'<th class="n area">([^<]+)<br>', summary)
    assert heads == [a.name_zh for a in results.catalogue.areas]
    for city in results.cities:
        row = summary.split(f'<tr data-code="{city.code}">', 1)[1].split("</tr>", 1)[0]
        shown = dict(re.findall(r'data-area="([^"]+)">([^<]*)<', row))
        assert shown == {a.id: f"{a.points:.2f}" for a in city.areas}, city.code
    jinan = results.city("370100")
    assert sum(a.points for a in jinan.areas if not a.bonus) == pytest.approx(jinan.total)


# every reason scoring.py can give, made to happen: a new one without a case here fails
# test_every_reason_of_scoring_reads_in_chinese, and any that shows English in Chinese too
def _reasons() -> Iterator[tuple[str, str]]:
    """(the indicator's unit, the Chinese reason) of every branch of grading.scoring."""
    db37 = built_in("db37-3890.1-2020")
    gbt = built_in("gbt-33356-2016")
    by_id = {i.id: i for c in (db37, gbt) for i in c.indicators}
    linear = next(i for i in gbt.indicators if i.scoring.method == "linear")
    levels = (
        ("huimin.education", None),
        ("sheshi.cim", True),
        ("sheshi.cim", "否"),
        ("baozhang.plan", "优"),
        ("baozhang.plan", "甲"),
        ("sheshi.5g_density", "五个"),
        ("sheshi.5g_density", 1),
        ("sheshi.5g_density", 5),
        ("sheshi.5g_density", 12),
        ("baozhang.security", 0),
        ("tese.pilot", 2),
        (linear.id, 42.5),
    )
    for ind, value in levels:
        yield by_id[ind].unit, scoring.indicator_level(by_id[ind], value)[1].zh
    best: dict[str, Any] = {i.id: 10**6 if i.direction == "higher" else 0 for i in db37.indicators}
    best |= {"sheshi.cim": True, "baozhang.plan": "优"}
    huimin = dict.fromkeys(("huimin.education", "huimin.travel", "huimin.medical"), 75)
    weak = dict.fromkeys(("huimin.education", "zhengfu.online", "jingji.digital_share"), 0)
    uncounted = db37.stars.model_copy(update={"bonus_counts": False})
    cities = (
        (db37, best),  # the bonus capped
        (db37, best | {"baozhang.security": 9}),  # vetoed
        (db37, {k: v for k, v in best.items() if k != "baozhang.security"}),  # veto unsettled
        (db37, best | weak),  # too few points for the next level
        (db37, best | {"jingji.digital_share": 0}),  # an area short of its share
        (db37.model_copy(update={"stars": uncounted}), best | {"huimin.education": 0}),
        (db37, best | huimin | {"zhengfu.online": 92, "zhengfu.video": 85}),  # bonus lifts
    )
    for catalogue, values in cities:
        for reason in scoring.score_city(catalogue, values).reasons_zh:
            yield "", reason


def test_every_reason_of_scoring_reads_in_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    said = scoring.Said
    places = {n.lineno for n in _said_calls()}
    reached: set[int] = set()

    def recorded(en: str, zh: str) -> scoring.Said:
        reached.add(sys._getframe(1).f_lineno)
        return said(en, zh)

    monkeypatch.setattr(scoring, "Said", recorded)
    catalogues = [built_in("db37-3890.1-2020"), built_in("gbt-33356-2016")]
    names = {a.id: a.name_zh for c in catalogues for a in c.areas}
    names |= {i.id: i.name_zh for c in catalogues for i in c.indicators}
    found = []
    for unit, reason in _reasons():
        if english_words(text := zh_reason(reason, names, unit), set()):
            found.append(f"{reason!r} -> {text!r}")
    assert not places - reached, f"no case gives the reasons of scoring.py lines {places - reached}"
    assert not found, "reasons with English in Chinese:\n" + "\n".join(found)


def _said_calls() -> list[ast.Call]:
    tree = ast.parse(inspect.getsource(scoring))
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Said"
    ]


def test_the_services_own_words_read_in_chinese() -> None:
    catalogues = [built_in("db37-3890.1-2020"), built_in("gbt-33356-2016")]
    bases = [i.provenance.source for c in catalogues for i in c.indicators]
    bases.append(built_in_policy("shandong-example").provenance.source)
    sources = [source for _, source in COMPUTED.values()] + ["import values.csv"]
    ids = {i.computed_from_cim or "" for c in catalogues for i in c.indicators} | {"cli:王委员"}
    said = [(b, zh_basis(b)) for b in bases] + [(s, zh_source(s)) for s in sources]
    found = [f"{text!r} -> {zh!r}" for text, zh in said if english_words(zh, ids - {""})]
    assert not found, "untranslated:\n" + "\n".join(found)


def _table_rows(box: Any, header: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every table-row box under `box`, and whether it is in a table's head."""
    from weasyprint.formatting_structure import boxes

    if isinstance(box, boxes.TableRowGroupBox):
        header = box.is_header
    if isinstance(box, boxes.TableRowBox):
        yield box, header
    for child in getattr(box, "children", ()):
        yield from _table_rows(child, header)


def split_rows(page: str) -> tuple[int, list[tuple[str, list[int]]]]:
    """The pages of the PDF WeasyPrint makes of `page`, and each table row (its text) that lies
    on more than one of them: a split row leaves a box of its element on each page. A table's
    head is left out: it is repeated on every page the table spans, by design."""
    from weasyprint import HTML

    document = HTML(string=page).render()
    pages: dict[int, tuple[Any, set[int]]] = {}
    for number, rendered in enumerate(document.pages, 1):
        for row, header in _table_rows(rendered._page_box):
            if not header:
                pages.setdefault(id(row.element), (row.element, set()))[1].add(number)
    split = [
        (" ".join("".join(element.itertext()).split())[:60], sorted(on))
        for element, on in pages.values()
        if len(on) > 1
    ]
    return len(document.pages), split


def test_no_table_row_is_split_across_pages(results: RoundResults) -> None:
    for lang in ("zh", "en"):
        page = render_html(results, {"status": "final", "results_sha256": results.sha256()}, lang)
        count, split = split_rows(page)
        assert count > 16  # the summary, and each of the 16 cities on pages of its own
        assert not split, f"{lang}: rows split across pages: {split}"


def test_a_split_row_is_seen() -> None:
    """The check above can fail: without `break-inside: avoid` a tall row near a page's foot
    is split, and the check names it; with it, the row moves to the next page whole."""
    rows = "".join(
        f"<tr><td>row {k}</td><td>{'line<br>' * (12 if k == 5 else 1)}</td></tr>" for k in range(12)
    )
    page = (
        "<html><head><style>@page {{ size: A6; margin: 10mm }} tr {{ break-inside: {} }}"
        "</style></head><body><p style='height: 40mm'>text</p><table>{}</table></body></html>"
    )
    count, split = split_rows(page.format("auto", rows))
    assert count == 2 and len(split) == 1
    assert split[0][0].startswith("row 5") and split[0][1] == [1, 2]
    assert split_rows(page.format("avoid", rows)) == (2, [])


def test_values_print_as_entered_never_rounded_to_a_threshold() -> None:
    from grading.report_words import value_text

    shown = {89.996: "89.996", 1234.56: "1,234.56", 9999.5: "9,999.5", 3.0: "3", 0.1 + 0.2: "0.3"}
    assert {v: value_text(v) for v in shown} == shown
    assert (value_text(True), value_text(False, "en"), value_text(None)) == ("是", "no", "—")
    assert value_text(12_000_000) == "12,000,000"
