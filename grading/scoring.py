"""Scoring: indicator values -> star levels -> points -> area subtotals -> total -> city stars.

Pure functions over a catalogue and plain values, with the reason for every number, so that a
committee can check each step by hand. No database, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grading.catalogue import (
    Catalogue,
    Indicator,
    Linear,
    Qualitative,
    StarRule,
    Thresholds,
    YesNo,
)

MAX_LEVEL = 5.0


@dataclass(frozen=True)
class Said:
    """A reason in English and in Chinese."""

    en: str
    zh: str


@dataclass(frozen=True)
class IndicatorScore:
    """One indicator's result and why (in English and Chinese)."""

    id: str
    value: Any
    level: float
    points: float
    reason: str
    reason_zh: str = ""


@dataclass(frozen=True)
class AreaScore:
    """An area's subtotal (bonus areas capped)."""

    id: str
    points: float
    weight: float
    bonus: bool


@dataclass(frozen=True)
class CityScore:
    """A city's full result."""

    total: float
    bonus: float
    stars: int
    subtype: str | None
    vetoed: list[str]
    areas: list[AreaScore]
    indicators: list[IndicatorScore]
    reasons: list[str] = field(default_factory=list)
    reasons_zh: list[str] = field(default_factory=list)


def _fmt(x: float) -> str:
    return f"{x:g}"


def indicator_level(ind: Indicator, value: Any) -> tuple[float, Said]:
    """The star level (0-5) a value earns, and the reason in words."""
    if value is None:
        return 0.0, Said("no value", "无数值")
    s = ind.scoring
    if isinstance(s, YesNo):
        yes = value is True or (
            isinstance(value, str) and value.strip().lower() in ("yes", "true", "1", "是", "有")
        )
        return (MAX_LEVEL, Said("yes", "是")) if yes else (0.0, Said("no", "否"))
    if isinstance(s, Qualitative):
        if value not in s.levels:
            known = sorted(s.levels)
            return 0.0, Said(
                f"grade {value!r} is not one of {known}", f"等级 {value!r} 不在 {known} 之中"
            )
        return float(s.levels[value]), Said(f"grade {value!r}", f"等级 {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0, Said(f"value {value!r} is not a number", f"数值 {value!r} 不是数字")
    better = (lambda a, b: a >= b) if ind.direction == "higher" else (lambda a, b: a <= b)
    unit = f" {ind.unit}" if ind.unit else ""
    if isinstance(s, Thresholds):
        level = 0
        for k, t in enumerate(s.thresholds, 1):
            if better(v, t):
                level = k
        if level == 0:
            first = _fmt(s.thresholds[0])
            return 0.0, Said(
                f"{_fmt(v)}{unit} does not reach level 1 ({first})",
                f"{_fmt(v)}{unit} 未达到 1 级（{first}）",
            )
        reached = _fmt(s.thresholds[level - 1])
        nxt = _fmt(s.thresholds[level]) if level < 5 else None
        return float(level), Said(
            f"{_fmt(v)}{unit} reaches level {level} ({reached})"
            + (f"; level {level + 1} needs {nxt}" if nxt else ""),
            f"{_fmt(v)}{unit} 达到 {level} 级（{reached}）"
            + (f"；{level + 1} 级需 {nxt}" if nxt else ""),
        )
    assert isinstance(s, Linear)
    share = (v - s.worst) / (s.best - s.worst)
    fraction = max(0.0, min(MAX_LEVEL, MAX_LEVEL * share))
    return fraction, Said(
        f"{_fmt(v)}{unit} on the line from {_fmt(s.worst)} (0) to {_fmt(s.best)} (5): "
        f"level {fraction:.3g}",
        f"{_fmt(v)}{unit} 位于 {_fmt(s.worst)}（0 级）至 {_fmt(s.best)}（5 级）之间："
        f"{fraction:.3g} 级",
    )


def _star_level(rule: StarRule, points: float, areas: list[AreaScore]) -> tuple[int, list[Said]]:
    """The star level `points` reach under the rule, and why it is not higher."""
    stars = 0
    for level in sorted(rule.thresholds):
        if points < rule.thresholds[level]:
            need = _fmt(rule.thresholds[level])
            return stars, [
                Said(
                    f"{level} stars need {need} points, the city has {points:.2f}",
                    f"{level} 星需 {need} 分，该市得 {points:.2f} 分",
                )
            ]
        share = rule.min_area_share.get(level)
        weak = [
            a.id
            for a in areas
            if share is not None and not a.bonus and a.points < share * a.weight - 1e-9
        ]
        if weak:
            short = ", ".join(weak)
            return stars, [
                Said(
                    f"{level} stars need every area at {share:.0%} of its weight; short: {short}",
                    f"{level} 星要求每个领域达到其权重的 {share:.0%}；未达到：{short}",
                )
            ]
        stars = level
    return stars, []


def score_city(
    catalogue: Catalogue, values: dict[str, Any], previous_total: float | None = None
) -> CityScore:
    """Score one city's indicator values by the catalogue."""
    indicators: list[IndicatorScore] = []
    for ind in catalogue.indicators:
        level, why = indicator_level(ind, values.get(ind.id))
        points = ind.weight * level / MAX_LEVEL
        indicators.append(IndicatorScore(ind.id, values.get(ind.id), level, points, why.en, why.zh))
    by_id = {s.id: s for s in indicators}
    earned: dict[str, float] = {}  # each area's points, in one pass (not areas x indicators)
    for ind, score in zip(catalogue.indicators, indicators, strict=True):
        earned[ind.area] = earned.get(ind.area, 0.0) + score.points
    areas: list[AreaScore] = []
    total = bonus = 0.0
    reasons: list[Said] = []
    for area in catalogue.areas:
        raw = earned.get(area.id, 0.0)
        points = min(raw, area.cap) if area.bonus and area.cap is not None else raw
        if area.bonus:
            bonus += points
            if points < raw:
                reasons.append(
                    Said(
                        f"bonus area {area.id} capped at {_fmt(points)} (earned {_fmt(raw)})",
                        f"加分领域 {area.name_zh} 封顶 {_fmt(points)} 分（得 {_fmt(raw)} 分）",
                    )
                )
        else:
            total += points
        areas.append(AreaScore(area.id, points, area.weight, area.bonus))
    vetoed = [
        i.id
        for i in catalogue.indicators
        if i.veto and by_id[i.id].value is not None and by_id[i.id].level == 0
    ]
    unsettled = [i.id for i in catalogue.indicators if i.veto and by_id[i.id].value is None]
    grand = total + bonus
    stars = 0
    rule = catalogue.stars
    if vetoed:
        ids = ", ".join(vetoed)
        reasons.append(
            Said(f"veto: {ids} at level 0, so no star level", f"否决项 {ids} 为 0 级，不评星级")
        )
    elif unsettled:
        ids = ", ".join(unsettled)
        reasons.append(
            Said(
                f"veto item {ids} has no value yet: no star level until it is entered",
                f"否决项 {ids} 尚无数值：填报前不评星级",
            )
        )
    else:
        # the star thresholds are measured with or without the bonus, as the catalogue says;
        # the reasons say so wherever the bonus makes a difference
        stars, because = _star_level(rule, grand if rule.bonus_counts else total, areas)
        reasons += because
        if bonus > 0 and not rule.bonus_counts:
            reasons.append(
                Said(
                    f"bonus points do not count toward the star level ({_fmt(bonus)} not counted)",
                    f"加分项不计入星级（加分 {_fmt(bonus)} 分不计）",
                )
            )
        elif bonus > 0 and (without := _star_level(rule, total, areas)[0]) != stars:
            reasons.append(
                Said(
                    f"bonus points count toward the star level: {stars} stars with them, "
                    f"{without} without",
                    f"加分项计入星级：计入加分 {stars} 星，不计 {without} 星",
                )
            )
    subtype = None
    if stars == 4 and rule.growth_points is not None:  # a type only where the catalogue says how
        grew = previous_total is not None and grand - previous_total >= rule.growth_points
        subtype = "成长型" if grew else "基础型"
    return CityScore(
        round(total, 6),
        round(bonus, 6),
        stars,
        subtype,
        vetoed,
        areas,
        indicators,
        [r.en for r in reasons],
        [r.zh for r in reasons],
    )
