"""Ranking and award allocation: merit order, and money within the policy's budget and caps.

Pure functions over plain data. The policy (eligibility, cap, budget, amounts, step-up reward)
is a file the committee keeps, never numbers in code: the province publishes only that cities at
three stars or more are eligible, on merit, for up to 12 million yuan each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from grading.catalogue import ID, TEXT, Provenance, built_in_file, parse_model, read_text

BUILT_IN_POLICIES = Path(__file__).resolve().parent / "policies"


class AwardPolicy(BaseModel):
    """How a round's award budget is shared."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=ID)
    title: str = Field(max_length=TEXT)
    min_stars: int = Field(3, ge=1, le=5, description="eligible from this star level up")
    cap_per_city: float = Field(12_000_000, ge=0, description="CNY")
    budget: float = Field(ge=0, description="CNY for the whole round")
    method: Literal["per_star", "per_point"]
    amounts: dict[int, float] = Field(
        default_factory=dict, max_length=5, description="per_star: CNY for each star level"
    )
    per_point: float = Field(0, ge=0, description="per_point: CNY per point of total + bonus")
    step_up: float = Field(0, ge=0, description="CNY more for a city that rose a star level")
    placeholders: list[
        Literal["min_stars", "cap_per_city", "budget", "amounts", "per_point", "step_up"]
    ] = Field(
        default_factory=list,
        max_length=6,
        description="the values that are placeholders, not published; the others are published",
    )
    provenance: Provenance

    @model_validator(mode="after")
    def _complete(self) -> AwardPolicy:
        if self.method == "per_star":
            missing = [s for s in range(self.min_stars, 6) if s not in self.amounts]
            if missing:
                raise ValueError(f"per_star policy needs an amount for {missing} stars")
        return self


@dataclass(frozen=True)
class CityResult:
    """What ranking needs of a scored city."""

    code: str
    stars: int
    total: float
    bonus: float
    previous_stars: int | None = None


@dataclass(frozen=True)
class Allocation:
    """One city's place and amount, with the reason."""

    code: str
    rank: int | None  # None: not assessed, so not ranked
    stars: int
    score: float
    amount: float
    reason: str
    reason_zh: str = ""


MERIT = (
    "more stars first; then higher total with bonus; then higher total without bonus; "
    "then city code (a documented, arbitrary last tie-break)"
)
MERIT_ZH = (
    "星级高者在前；星级相同时总分（含加分）高者在前；再相同时基础得分高者在前；"
    "最后按城市代码排序（约定的末位规则）"
)


def rank(cities: list[CityResult]) -> list[CityResult]:
    """Cities in merit order (see MERIT); the same whatever order they come in."""
    return sorted(cities, key=lambda c: (-c.stars, -(c.total + c.bonus), -c.total, c.code))


def _stars(n: int | None) -> str:
    return f"{n} star" if n == 1 else f"{n} stars"


def allocate(policy: AwardPolicy, cities: list[CityResult]) -> list[Allocation]:
    """Award amounts in merit order, never above a city's cap or the budget left."""
    left = policy.budget
    out: list[Allocation] = []
    for place, city in enumerate(rank(cities), 1):
        score = round(city.total + city.bonus, 6)
        if city.stars < policy.min_stars:
            out.append(
                Allocation(
                    city.code,
                    place,
                    city.stars,
                    score,
                    0.0,
                    f"{_stars(city.stars)}: below the {policy.min_stars} needed",
                    f"{city.stars} 星：低于所需的 {policy.min_stars} 星",
                )
            )
            continue
        if policy.method == "per_star":
            want = policy.amounts[city.stars]
            why = f"{_stars(city.stars)}: {want:,.0f}"
            why_zh = f"{city.stars} 星：{want:,.0f}"
        else:
            want = policy.per_point * score
            why = f"{score:g} points x {policy.per_point:,.0f}: {want:,.0f}"
            why_zh = f"{score:g} 分 × {policy.per_point:,.0f}：{want:,.0f}"
        if city.previous_stars is not None and city.stars > city.previous_stars and policy.step_up:
            want += policy.step_up
            why += f" + {policy.step_up:,.0f} for rising from {_stars(city.previous_stars)}"
            why_zh += f" + 升星奖励 {policy.step_up:,.0f}（由 {city.previous_stars} 星升级）"
        if want > policy.cap_per_city:
            want = policy.cap_per_city
            why += f"; capped at {policy.cap_per_city:,.0f} per city"
            why_zh += f"；按单市上限 {policy.cap_per_city:,.0f}"
        amount = min(want, left)
        if amount < want:
            why += f"; only {amount:,.0f} of the budget was left"
            why_zh += f"；预算仅余 {amount:,.0f}"
        left -= amount
        out.append(Allocation(city.code, place, city.stars, score, amount, why, why_zh))
    return out


def parse_policy(text: str, source: str = "policy") -> AwardPolicy:
    """An award policy from YAML or JSON text.

    Raises:
        InvalidInput: not YAML/JSON, or the policy breaks a rule.
    """
    return parse_model(AwardPolicy, text, source)


def load_policy(path: Path) -> AwardPolicy:
    """An award policy file, or a built-in policy by its id (see BUILT_IN_POLICIES).

    Raises:
        InvalidInput: unreadable or invalid. NotFound: neither a file nor a built-in id.
    """
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        return built_in_policy(path.name)
    return parse_policy(read_text(path), str(path))


def built_in_policy(policy_id: str) -> AwardPolicy:
    """A policy that ships with CIM (an example to copy).

    Raises:
        NotFound: no such policy.
    """
    path = built_in_file(BUILT_IN_POLICIES, "policy", policy_id)
    return parse_policy(read_text(path), str(path))
