"""The paper of a planning analysis, to file with a review: the process and what it was asked,
the model it read (each dataset with its source's SHA-256), the rule applied, the figures, and
a picture of the model (`analysis.picture`); HTML, and PDF through WeasyPrint, in Chinese (the
default) or English throughout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Engine

from analysis import runs
from analysis.picture import plan_svg
from cim.errors import InvalidInput

TEMPLATES = Path(__file__).resolve().parent / "report_templates"
BEIJING = timedelta(hours=8)
MAX_ROWS = 300  # of one table; the rest is counted, and in the job's JSON results

TITLES = {
    "parcel-indicators": ("地块指标核算报告", "Parcel indicators report"),
    "height-limits": ("建筑控高分析报告", "Building height limit report"),
    "sunlight": ("日照分析报告", "Sunlight analysis report"),
    "scheme-comparison": ("方案比选报告", "Design scheme comparison report"),
}
WORDS = {
    "zh": {
        "city": "城市", "scenario": "方案", "baseline": "现状", "job": "分析编号",
        "run": "分析时间", "inputs": "输入", "model": "所用模型数据", "dataset": "数据集",
        "format": "格式", "sha": "源文件 SHA-256", "imported": "导入时间", "rule": "规则",
        "figures": "结果", "picture": "模型平面图", "parcel": "地块", "land_use": "用地性质",
        "area": "用地面积 (m²)", "buildings": "建筑数", "floor_area": "建筑面积 (m²)",
        "far": "容积率", "density": "建筑密度 (%)", "max_height": "最大高度 (m)",
        "limit": "限值", "check": "判定", "exceeds": "超标", "within": "符合", "none": "—",
        "building": "建筑", "height": "高度 (m)", "over": "超出 (m)", "no_breach": "无超限建筑",
        "points": "采样点", "passing": "满足", "failing": "不满足", "facade": "朝向 (°)",
        "floor": "楼层", "hours": "日照时数 (h)", "intervals": "日照时段（真太阳时）",
        "more": "另有 {n} 行见分析结果 JSON", "windows_lost": "失去日照的窗户",
        "before": "比选前 (min)", "after": "比选后 (min)", "summary": "汇总",
        "sign": "审查意见及签字", "reviewer": "审查人", "date": "日期",
        "generated": "生成时间", "day": "日照标准日", "window": "有效日照时间带",
        "step": "计算步长 (min)", "breaching": "超限建筑数",
        "legend": "灰色：建筑；红色：超限建筑；蓝色虚线：地块；圆点：窗户采样点（红色为不满足）",
    },
    "en": {
        "city": "City", "scenario": "Scenario", "baseline": "baseline", "job": "Job",
        "run": "Run at", "inputs": "Inputs", "model": "Model data read", "dataset": "Dataset",
        "format": "Format", "sha": "Source SHA-256", "imported": "Ingested", "rule": "Rule",
        "figures": "Results", "picture": "Plan of the model", "parcel": "Parcel",
        "land_use": "Land use", "area": "Area (m²)", "buildings": "Buildings",
        "floor_area": "Floor area (m²)", "far": "FAR", "density": "Density (%)",
        "max_height": "Max height (m)", "limit": "limit", "check": "Result",
        "exceeds": "exceeds", "within": "within", "none": "—", "building": "Building",
        "height": "Height (m)", "over": "Over by (m)", "no_breach": "No building above its limit",
        "points": "Points", "passing": "pass", "failing": "fail", "facade": "Facing (°)",
        "floor": "Floor", "hours": "Hours of sun", "intervals": "Sunlit (true solar time)",
        "more": "{n} more rows in the job's JSON results", "windows_lost": "Windows losing sun",
        "before": "Before (min)", "after": "After (min)", "summary": "Summary",
        "sign": "Review and signature", "reviewer": "Reviewer", "date": "Date",
        "generated": "Generated", "day": "Standard day", "window": "Window",
        "step": "Step (min)", "breaching": "Buildings above their limit",
        "legend": "grey: buildings; red: above their limit; blue dashes: parcels; dots: window "
        "points (red: failing)",
    },
}  # fmt: skip


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def render_html(engine: Engine, job: str, lang: str = "zh") -> str:
    """The paper of a successful job as one self-contained HTML page.

    Raises:
        NotFound: no such job. InvalidInput: the job has no results (failed or not done), or
            the language is not zh or en.
    """
    if lang not in WORDS:
        raise InvalidInput(f"lang {lang!r}: zh or en")
    run = runs.get_run(engine, job, with_results=True)
    if run.status != "successful" or run.results is None:
        raise InvalidInput(f"job {job} is {run.status}: it has no results to report")
    results = run.results
    with engine.connect() as conn:
        picture = plan_svg(conn, run.process, run.inputs, results)
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["n"] = _number
    zh = lang == "zh"
    created = run.created_at + (BEIJING if zh else timedelta(0))
    return env.get_template("analysis.html.j2").render(
        lang=lang,
        w=WORDS[lang],
        title=TITLES[run.process][0 if zh else 1],
        run=run,
        r=results,
        created=created.strftime("%Y-%m-%d %H:%M") + (" 北京时间" if zh else " UTC"),
        picture=Markup(picture),  # noqa: S704 (drawn here: every text in it is escaped)
        max_rows=MAX_ROWS,
    )


def render_pdf(engine: Engine, job: str, lang: str = "zh") -> bytes:
    """The paper as PDF (A4)."""
    from weasyprint import HTML

    return bytes(HTML(string=render_html(engine, job, lang)).write_pdf())
