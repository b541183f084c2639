"""Scoring: indicator values -> star levels -> points -> area subtotals -> total -> city stars.

Pure functions over a catalogue and plain values, with the reason for every number, so that a
committee can check each step by hand. No database, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cim.grading.catalogue import Catalogue, Indicator, Linear, Qualitative, Thresholds, YesNo

MAX_LEVEL = 5.0


@dataclass(frozen=True)
class IndicatorScore:
    """One indicator's result and why."""

    id: str
    value: Any
    level: float
    points: float
    reason: str


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


def _fmt(x: float) -> str:
    return f"{x:g}"


def indicator_level(ind: Indicator, value: Any) -> tuple[float, str]:
    """The star level (0-5) a value earns, and the reason in words."""
    if value is None:
        return 0.0, "no value"
    s = ind.scoring
    if isinstance(s, YesNo):
        yes = value is True or (
            isinstance(value, str) and value.strip().lower() in ("yes", "true", "1", "是", "有")
        )
        return (MAX_LEVEL, "yes") if yes else (0.0, "no")
    if isinstance(s, Qualitative):
        if value not in s.levels:
            return 0.0, f"grade {value!r} is not one of {sorted(s.levels)}"
        return float(s.levels[value]), f"grade {value!r}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0, f"value {value!r} is not a number"
    better = (lambda a, b: a >= b) if ind.direction == "higher" else (lambda a, b: a <= b)
    if isinstance(s, Thresholds):
        level = 0
        for k, t in enumerate(s.thresholds, 1):
            if better(v, t):
                level = k
        if level == 0:
            return 0.0, f"{_fmt(v)} {ind.unit} does not reach level 1 ({_fmt(s.thresholds[0])})"
        nxt = f"; level {level + 1} needs {_fmt(s.thresholds[level])}" if level < 5 else ""
        return float(level), (
            f"{_fmt(v)} {ind.unit} reaches level {level} ({_fmt(s.thresholds[level - 1])}){nxt}"
        )
    assert isinstance(s, Linear)
    share = (v - s.worst) / (s.best - s.worst)
    fraction = max(0.0, min(MAX_LEVEL, MAX_LEVEL * share))
    return fraction, (
        f"{_fmt(v)} {ind.unit} on the line from {_fmt(s.worst)} (0) to "
        f"{_fmt(s.best)} (5): level {fraction:.3g}"
    )


def score_city(
    catalogue: Catalogue, values: dict[str, Any], previous_total: float | None = None
) -> CityScore:
    """Score one city's indicator values by the catalogue."""
    indicators: list[IndicatorScore] = []
    for ind in catalogue.indicators:
        level, reason = indicator_level(ind, values.get(ind.id))
        points = ind.weight * level / MAX_LEVEL
        indicators.append(IndicatorScore(ind.id, values.get(ind.id), level, points, reason))
    by_id = {s.id: s for s in indicators}
    areas: list[AreaScore] = []
    total = bonus = 0.0
    reasons: list[str] = []
    for area in catalogue.areas:
        raw = sum(by_id[i.id].points for i in catalogue.indicators if i.area == area.id)
        points = min(raw, area.cap) if area.bonus and area.cap is not None else raw
        if area.bonus:
            bonus += points
            if points < raw:
                reasons.append(
                    f"bonus area {area.id} capped at {_fmt(points)} (earned {_fmt(raw)})"
                )
        else:
            total += points
        areas.append(AreaScore(area.id, points, area.weight, area.bonus))
    vetoed = [i.id for i in catalogue.indicators if i.veto and by_id[i.id].level == 0]
    grand = total + bonus
    stars = 0
    rule = catalogue.stars
    if vetoed:
        reasons.append(f"veto: {', '.join(vetoed)} at level 0, so no star level")
    else:
        for level in sorted(rule.thresholds):
            if grand < rule.thresholds[level]:
                reasons.append(
                    f"{level} stars need {_fmt(rule.thresholds[level])} points, "
                    f"the city has {grand:.2f}"
                )
                break
            share = rule.min_area_share.get(level)
            weak = [
                a.id
                for a in areas
                if share is not None and not a.bonus and a.points < share * a.weight - 1e-9
            ]
            if weak:
                reasons.append(
                    f"{level} stars need every area at {share:.0%} of its weight; "
                    f"short: {', '.join(weak)}"
                )
                break
            stars = level
    subtype = None
    if stars == 4:
        grew = (
            rule.growth_points is not None
            and previous_total is not None
            and grand - previous_total >= rule.growth_points
        )
        subtype = "成长型" if grew else "基础型"
    return CityScore(
        round(total, 6), round(bonus, 6), stars, subtype, vetoed, areas, indicators, reasons
    )
