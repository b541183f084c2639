"""The round report, ready to sign: HTML (self-contained, charts inline) and PDF (WeasyPrint)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from grading.charts import radar, score_bars
from grading.results import RankedCity, RoundResults

TEMPLATE_DIR = Path(__file__).resolve().parent / "report_templates"

WORDS = {
    "zh": {
        "report": "新型智慧城市星级评价报告",
        "draft": "草稿 — 未定稿，不得签署",
        "catalogue": "指标体系",
        "policy": "奖补政策",
        "status": "状态",
        "generated": "生成时间",
        "sha": "定稿结果 SHA-256",
        "provisional": "注意：本报告所用指标体系或奖补政策中含有暂定（provisional）数值（见附录），"
        "须由评审委员会确认后方可采用。",
        "summary": "评价结果汇总",
        "rank": "排名",
        "city": "城市",
        "stars": "星级",
        "subtype": "类型",
        "total": "基础得分",
        "bonus": "加分",
        "score": "总分",
        "amount": "奖补金额（元）",
        "scores": "各市得分",
        "allocation": "奖补分配",
        "eligibility": "申报条件",
        "from_stars": "星级及以上",
        "cap": "单市上限",
        "budget": "总预算",
        "method": "分配方式",
        "per_star": "按星级定额",
        "per_point": "按分值",
        "step_up": "升星奖励",
        "merit": "择优排序规则",
        "reason": "依据",
        "allocated": "已分配",
        "left": "结余",
        "detail": "分项评价",
        "area": "领域",
        "points": "得分",
        "weight": "权重",
        "indicator": "指标",
        "value": "数值",
        "level": "等级",
        "source": "来源与佐证",
        "computed": "由城市信息模型计算",
        "not_assessed": "未评",
        "annex": "附录：暂定数值及其依据",
        "annex_intro": "下列数值为暂定（未公开或未经委员会确认），"
        "本报告的得分、星级与奖补金额以其为准，须由评审委员会逐项确认：",
        "what": "项目",
        "basis": "依据",
        "reported": "城市上报",
        "alternative": "另一数值",
        "chosen": "委员会选定",
        "missing": "缺少数值",
        "signatures": "评审委员会签字",
        "chair": "主任委员",
        "member": "委员",
        "date": "日期",
        "yuan": "元",
    },
    "en": {
        "report": "Smart-city star rating report",
        "draft": "DRAFT — not final, not to be signed",
        "catalogue": "Indicator catalogue",
        "policy": "Award policy",
        "status": "Status",
        "generated": "Generated",
        "sha": "Final results SHA-256",
        "provisional": "Note: the catalogue or award policy of this report contains provisional "
        "numbers (see the annex); the committee must confirm them before they are adopted.",
        "summary": "Results",
        "rank": "Rank",
        "city": "City",
        "stars": "Stars",
        "subtype": "Type",
        "total": "Base score",
        "bonus": "Bonus",
        "score": "Score (with bonus)",
        "amount": "Award (CNY)",
        "scores": "Scores by city",
        "allocation": "Award allocation",
        "eligibility": "Eligibility",
        "from_stars": "stars or more",
        "cap": "Cap per city",
        "budget": "Budget",
        "method": "Method",
        "per_star": "fixed amount per star level",
        "per_point": "per point",
        "step_up": "Step-up reward",
        "merit": "Merit order",
        "reason": "Reason",
        "allocated": "Allocated",
        "left": "Left",
        "detail": "Detail by city",
        "area": "Area",
        "points": "Points",
        "weight": "Weight",
        "indicator": "Indicator",
        "value": "Value",
        "level": "Level",
        "source": "Source and evidence",
        "computed": "computed from the city model",
        "not_assessed": "not assessed",
        "annex": "Annex: provisional numbers and their basis",
        "annex_intro": "These numbers are provisional (not public, or not confirmed by the "
        "committee); the scores, star levels and amounts of this report rest on them, and the "
        "committee must confirm each:",
        "what": "Item",
        "basis": "Basis",
        "reported": "reported by the city",
        "alternative": "other value",
        "chosen": "chosen by the committee",
        "missing": "values missing",
        "signatures": "Signatures of the grading committee",
        "chair": "Chair",
        "member": "Member",
        "date": "Date",
        "yuan": "CNY",
    },
}
SUBTYPES_EN = {"基础型": "basic", "成长型": "growth"}


def value_text(value: Any, lang: str = "zh") -> str:
    """An indicator value as a reader expects it: 3 not 3.0, yes/no (是/否), — for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


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


def render_html(results: RoundResults, round_info: dict[str, Any], lang: str = "zh") -> str:
    """The report as one self-contained HTML page."""
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
            indicators={i.id: i for i in cat.indicators},
            provisional=provisional,
            annex=results.provisional_numbers(),
            subtype=(lambda s: s if lang == "zh" or s is None else SUBTYPES_EN.get(s, s)),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def render_pdf(results: RoundResults, round_info: dict[str, Any], lang: str = "zh") -> bytes:
    """The report as PDF (A4)."""
    from weasyprint import HTML

    return HTML(string=render_html(results, round_info, lang)).write_pdf()
