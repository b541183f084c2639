"""The round report, ready to sign: HTML (self-contained, charts inline) and PDF (WeasyPrint), in
Chinese or English throughout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from grading.charts import radar, score_bars
from grading.comparison import Comparison
from grading.report_words import (
    BEIJING,
    STATUS_ZH,
    SUBTYPES_EN,
    WORDS,
    Wording,
    annex_rows,
    standard_code,
    title_in,
    value_text,
)
from grading.results import RankedCity, RoundResults

TEMPLATE_DIR = Path(__file__).resolve().parent / "report_templates"


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda v: f"{v:,.0f}"
    env.filters["value"] = value_text
    return env


def city_radar(results: RoundResults, city: RankedCity, lang: str = "zh") -> str:
    """The radar chart of one city's area shares (regular areas only)."""
    areas = {a.id: a for a in results.catalogue.areas}
    shown = [a for a in city.areas if not a.bonus]
    labels = [areas[a.id].name_zh if lang == "zh" else areas[a.id].name_en for a in shown]
    name = city.name_zh if lang == "zh" else city.name_en
    return radar(labels, [a.share for a in shown], title=name)


def render_html(
    results: RoundResults,
    round_info: dict[str, Any],
    lang: str = "zh",
    comparison: Comparison | None = None,
) -> str:
    """The report as one self-contained HTML page, every word in `lang` (zh or en), with the
    comparison with the previous round when there is one."""
    words = WORDS[lang]
    name = "name_zh" if lang == "zh" else "name_en"
    cat = results.catalogue
    bars = score_bars(
        [(getattr(c, name), c.score, c.stars) for c in results.cities],
        cat.scale,
        {int(k): v for k, v in cat.star_thresholds.items()},
    )
    provisional = (
        cat.star_rule_provisional
        or any(i.provisional for i in cat.indicators)
        or results.policy["provenance"]["status"] == "provisional"
    )
    zh = lang == "zh"
    names = {a.id: a.name_zh for a in cat.areas} | {i.id: i.name_zh for i in cat.indicators}
    indicators = {i.id: i for i in cat.indicators}
    status = round_info["status"]
    now = datetime.now(BEIJING if zh else UTC)
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            r=results,
            info=round_info,
            w=words,
            lang=lang,
            name=name,
            bars=Markup(bars),
            radars={c.code: Markup(city_radar(results, c, lang)) for c in results.cities},
            areas={a.id: a for a in cat.areas},
            indicators=indicators,
            # each city's area subtotals, by area id (the summary's columns)
            subtotals={c.code: {a.id: a for a in c.areas} for c in results.cities},
            provisional=provisional,
            annex=annex_rows(results, lang),
            subtype=(lambda s: s if zh or s is None else SUBTYPES_EN.get(s, s)),
            status=STATUS_ZH.get(status, status) if zh else status,
            standard=standard_code(cat.standard) if zh else cat.standard,
            policy_title=title_in(results.policy["title"], lang),
            say=Wording(lang, names),
            cmp=comparison,
            cmp_areas=_compared_areas(results, comparison),
            dict_of=lambda items: {x.id: x for x in items},
            generated=now.strftime("%Y-%m-%d %H:%M") + (" 北京时间" if zh else " UTC"),
        )
    )


def _compared_areas(results: RoundResults, comparison: Comparison | None) -> list[Any]:
    """The areas the comparison has, as the current catalogue names them (else the previous)."""
    if comparison is None:
        return []
    known = {a.id: a for a in results.catalogue.areas}
    out: dict[str, Any] = {}
    for city in comparison.cities:
        for a in city.areas:
            out.setdefault(a.id, known.get(a.id, a))
    return list(out.values())


def render_pdf(
    results: RoundResults,
    round_info: dict[str, Any],
    lang: str = "zh",
    comparison: Comparison | None = None,
) -> bytes:
    """The report as PDF (A4)."""
    from weasyprint import HTML

    return HTML(string=render_html(results, round_info, lang, comparison)).write_pdf()
