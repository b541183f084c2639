"""The words of the round report in Chinese and English, and the Chinese for what the results
carry in English or as ids (units, reasons' ids, statuses, provenance notes, the sources the
service writes, the annex's items). The canonical results (and so a final round's SHA-256) stay
as they are: the report translates as it renders, and tests/grading/test_report_layout.py fails
when a zh report shows an English word."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from grading.platform import FUNCTION_GROUPS
from grading.results import RoundResults

WORDS = {
    "zh": {
        "report": "新型智慧城市星级评价报告",
        "draft": "草稿 — 未定稿，不得签署",
        "catalogue": "指标体系",
        "policy": "奖补政策",
        "status": "状态",
        "generated": "生成时间",
        "sha": "定稿结果 SHA-256",
        "provisional": "注意：本报告所用指标体系或奖补政策中含有暂定数值（见附录），"
        "须由评审委员会确认后方可采用。",
        "summary": "评价结果汇总",
        "compared": "与上一轮比较",
        "compared_intro": "上一轮为定稿结果（下列为其 SHA-256 前缀）；"
        "各领域列为本轮较上一轮得分的变化。",
        "compared_intro_share": "上一轮为定稿结果（下列为其 SHA-256 前缀）；两轮各领域权重不同，"
        "各领域列为得分率（占该领域可得分的百分比）的变化。",
        "catalogue_changed": "两轮指标体系不同",
        "new_in_round": "上一轮未参评",
        "not_in_round": "本轮未参评",
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
        "declared": "由平台功能申报得出",
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
        "compared": "Compared with the previous round",
        "compared_intro": "The previous round's results are its final ones (SHA-256 prefix below); "
        "each area column is the change of the city's points since then.",
        "compared_intro_share": "The previous round's results are its final ones (SHA-256 prefix "
        "below); the rounds weigh the areas differently, so each area column is the change of "
        "the city's share of the area's points, in percent.",
        "catalogue_changed": "the rounds use different catalogues",
        "new_in_round": "not in the previous round",
        "not_in_round": "not in this round",
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
        "declared": "from the platform's declared function groups",
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
BEIJING = timezone(timedelta(hours=8))

# What the Chinese report says where the results carry English or ids. The canonical results
# (and so a final round's SHA-256) stay as they are: the report translates as it renders, and
# tests/grading/test_report_layout.py fails when a zh report shows an English word.
STATUS_ZH = {"draft": "草稿", "submitted": "已提交", "reviewed": "已复核", "final": "已定稿"}
UNITS_ZH = {
    "": "",
    "%": "%",
    "‰": "‰",
    "/km²": "个/平方公里",
    "km²": "平方公里",
    "km": "公里",
    "m": "米",
    "count": "个",
    "grade": "等级",
    "score": "分",
    "points": "分",
    "CNY": "元",
}
POLICY_FIELDS_ZH = {
    "budget": "总预算",
    "amounts": "各星级奖补金额",
    "step_up": "升星奖励",
    "cap_per_city": "单市上限",
    "min_stars": "申报星级条件",
    "per_point": "每分奖补金额",
}
# the clauses of the built-in catalogues' and policies' provenance notes ("; " between them)
BASIS_ZH = {
    "provisional": "暂定",
    "thresholds assumed": "分级阈值为假设",
    "indicator and thresholds assumed": "指标及分级阈值为假设",
    "indicator and thresholds assumed (5G coverage named publicly)": "指标及分级阈值为假设"
    "（5G覆盖已公开提及）",
    "indicator assumed": "指标为假设",
    "weight assumed": "权重为假设",
    "points assumed": "分值为假设",
    "qualitative grade assumed": "定性等级为假设",
    "veto item assumed (major incidents)": "否决项为假设（重大事件）",
    "named publicly (education)": "公开提及（教育）",
    "named publicly (travel)": "公开提及（出行）",
    "named publicly (medical care)": "公开提及（医疗）",
    "named publicly (5G coverage)": "公开提及（5G覆盖）",
    "named publicly (IPv6)": "公开提及（IPv6）",
    "named publicly (smart lighting)": "公开提及（智慧照明）",
    "bonus item named publicly (pilots)": "加分项公开提及（试点示范）",
    "bonus item named publicly (innovation)": "加分项公开提及（创新应用）",
    "second level not public": "二级指标未公开",
    "one evaluator score": "以评估机构的一项评分计",
    "survey share of satisfied citizens": "调查中满意市民所占比例",
    "line assumed": "评分线为假设",
    "GB/T 33356-2016 second level": "GB/T 33356-2016 二级指标",
    "scoring line provisional": "评分线暂定",
    "eligibility (3 stars+) and the 12,000,000 CNY cap are published": "申报条件（三星级及以上）"
    "与单市上限 12,000,000 元已公布",
    "budget, amounts and step-up are assumed": "总预算、各星级奖补金额与升星奖励为假设",
}
KINDS_ZH = {"administrative area": "行政区域", "built-up area": "建成区"}
# the sources the service itself writes for a value (grading.templates, grading.computed)
_AREA = re.compile(
    r"(?:(?P<name>.+) \()?(?P<kind>administrative area|built-up area)\)?, (?P<km2>[\d,.]+) km², "
    r"declared by (?P<by>.+) from (?P<file>.+) \(SHA-256 (?P<sha>[0-9a-f]+)…\)"
)


def _area_zh(m: re.Match[str]) -> str:
    kind = KINDS_ZH[m["kind"]]
    named = f"{m['name']}（{kind}）" if m["name"] else kind
    return (
        f"{named}，{m['km2']} 平方公里，由 {m['by']} 依据 {m['file']} 申报（SHA-256 {m['sha']}…）"
    )


# what the city model's indicators are (grading.cim_indicators), as a Chinese reader names them
CIM_NAMES_ZH = {
    "model_coverage": "三维建筑模型网格覆盖率",
    "lod2_share": "LOD2及以上建筑占比",
    "g5_density": "5G基站密度",
    "g5_building_coverage": "5G信号建筑覆盖率",
    "camera_coverage": "公共视频监控道路覆盖率",
    "smart_light_ratio": "智慧路灯比例",
    "iot_density": "物联感知节点密度",
}


def _groups_zh(ids: str) -> str:
    return "、".join(FUNCTION_GROUPS[g][0] if g in FUNCTION_GROUPS else g for g in ids.split(", "))


def _over_zh(m: re.Match[str]) -> str:
    area = _AREA.fullmatch(m["area"])
    name = CIM_NAMES_ZH.get(m["name"], m["name"])
    return (
        f"城市 {m['city']} 的城市信息模型：{name}，计算范围："
        f"{_area_zh(area) if area else m['area']}"
    )


SOURCES_ZH: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"CIM model of city (?P<city>\S+): (?P<name>\w+)"),
        lambda m: f"城市 {m['city']} 的城市信息模型：{CIM_NAMES_ZH.get(m['name'], m['name'])}",
    ),
    (re.compile(r"CIM model of city (?P<city>\S+): (?P<name>\w+), over (?P<area>.+)"), _over_zh),
    (
        re.compile(
            r"(?P<n>\d+) of (?P<of>\d+) function groups declared with evidence \((?P<rule>[^)]+)\)"
            r"(?:; missing: (?P<missing>.+))?"
        ),
        lambda m: (
            f"已凭佐证申报 {m['n']}/{m['of']} 个功能组（{m['rule']}）"
            + (f"；缺少：{_groups_zh(m['missing'])}" if m["missing"] else "")
        ),
    ),
    (re.compile(r"import (?P<file>.+)"), lambda m: f"导入 {m['file']}"),
]
# the items of the annex, as RoundResults.provisional_numbers() names them
ANNEX_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"star rule"), "星级评定规则"),
    (re.compile(r"area (?P<id>\S+) weight"), "领域「{name}」的权重"),
    (re.compile(r"indicator (?P<id>\S+) weight and thresholds"), "指标「{name}」的权重与分级阈值"),
    (re.compile(r"policy (?P<field>\S+)"), "奖补政策的{field}"),
]
_ID = re.compile(r"(?<![\w.])[A-Za-z][\w.]*\w(?![\w.])")  # an area or indicator id in a reason


def unit_text(unit: str, lang: str = "zh") -> str:
    """An indicator's unit in the report's language (an unknown one as it is)."""
    return UNITS_ZH.get(unit, unit) if lang == "zh" else unit


def zh_reason(text: str, names: dict[str, str], unit: str = "") -> str:
    """A Chinese reason of the results as the report prints it: the indicator's unit in
    Chinese, area and indicator ids by their Chinese names."""
    if unit and unit in UNITS_ZH:
        after_number = rf"(?<=\d) {re.escape(unit)}(?=[ ：;；)）]|$)"
        text = re.sub(after_number, f" {UNITS_ZH[unit]}" if UNITS_ZH[unit] else "", text)
    return _ID.sub(lambda m: names.get(m.group(0), m.group(0)), text)


def zh_source(text: str) -> str:
    """A value's source in Chinese where the service wrote it (an import, the city model); what
    a person typed stays as they typed it."""
    for pattern, said in SOURCES_ZH:
        if m := pattern.fullmatch(text):
            return said(m)
    return text


def zh_basis(text: str) -> str:
    """A provenance note in Chinese, clause by clause (an unknown clause as it is)."""
    return "；".join(BASIS_ZH.get(c, c) for c in re.split(r"; ", text) if c)


def annex_rows(results: RoundResults, lang: str = "zh") -> list[dict[str, str]]:
    """The annex: every provisional number the results rest on, with its basis."""
    rows = results.provisional_numbers()
    if lang != "zh":
        return rows
    names = {a.id: a.name_zh for a in results.catalogue.areas}
    names |= {i.id: i.name_zh for i in results.catalogue.indicators}
    out = []
    for row in rows:
        what = row["what"]
        for pattern, said in ANNEX_ZH:
            if m := pattern.fullmatch(what):
                found = m.groupdict()
                what = said.format(
                    name=names.get(found.get("id", ""), found.get("id")),
                    field=POLICY_FIELDS_ZH.get(found.get("field", ""), found.get("field")),
                )
                break
        out.append({**row, "what": what, "basis": zh_basis(row["basis"])})
    return out


def title_in(title: str, lang: str) -> str:
    """One language of a bilingual title ("山东… / Shandong…"); another title as it is."""
    parts = [p.strip() for p in title.split(" / ")]
    if len(parts) != 2:
        return title
    chinese = [p for p in parts if re.search(r"[\u4e00-\u9fff]", p)]
    other = [p for p in parts if p not in chinese]
    if len(chinese) != 1 or len(other) != 1:
        return title
    return chinese[0] if lang == "zh" else other[0]


def standard_code(standard: str) -> str:
    """The code of a standard (DB37/T 3890.1-2020) without the words after it."""
    m = re.match(r"[A-Z]+\d*(?:/[A-Z])? [\d.]+(?:-\d{4})?", standard)
    return m.group(0) if m else standard


def value_text(value: Any, lang: str = "zh") -> str:
    """An indicator value as a reader expects it: 3 not 3.0, 1,234.56, yes/no (是/否), — for
    none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    if isinstance(value, float):
        # as entered, never rounded to fewer digits: 89.996 is not 90, a threshold it misses
        text = f"{value:,.10f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass(frozen=True)
class Wording:
    """What the report prints of the results in its language: in Chinese, units, reasons and
    the service's own sources in Chinese, ids by their Chinese names."""

    lang: str
    names: dict[str, str]  # the Chinese names of the areas and indicators, by id

    def unit(self, unit: str) -> str:
        return unit_text(unit, self.lang)

    def reason(self, zh: str | None, en: str, unit: str = "") -> str:
        """A reason of the results (the English one where older results have no Chinese)."""
        if self.lang != "zh" or not zh:
            return en
        return zh_reason(zh, self.names, unit)

    def source(self, text: str) -> str:
        return zh_source(text) if self.lang == "zh" else text

    def ids(self, ids: tuple[str, ...]) -> str:
        """Indicators (or areas) by name in Chinese, by id in English."""
        zh = self.lang == "zh"
        return ", ".join(self.names.get(i, i) if zh else i for i in ids)
