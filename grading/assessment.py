"""A round assessed from its inputs: every city scored, ranked in merit order and given its award
within the policy. Pure: the same catalogue, policy, cities and values give the same results,
whatever order they come in — which is what lets a final round be recomputed and checked.
"""

from __future__ import annotations

from typing import Any

from grading.awards import MERIT, MERIT_ZH, Allocation, AwardPolicy, CityResult, allocate
from grading.catalogue import Catalogue
from grading.results import (
    PROVENANCE_FIELDS,
    AllocationTotals,
    AreaShare,
    CatalogueSummary,
    RankedCity,
    RoundMeta,
    RoundResults,
    ScoredIndicator,
)
from grading.scoring import score_city

NOT_ASSESSED = "not assessed: no value was entered"
NOT_ASSESSED_ZH = "未评：未录入任何数值"


def round_results(
    meta: dict[str, Any],
    catalogue: Catalogue,
    policy: AwardPolicy,
    cities: list[dict[str, Any]],
    values: dict[str, dict[str, dict[str, Any]]],
) -> RoundResults:
    """Score every city, rank them and allocate the awards.

    `cities` are dicts with code, name_zh, name_en, previous_stars, previous_total; `values`
    maps city code -> indicator id -> the stored value (value, unit, source, evidence...).
    """
    scored = {
        c["code"]: score_city(
            catalogue,
            {k: v["value"] for k, v in values.get(c["code"], {}).items()},
            c["previous_total"],
        )
        for c in cities
    }
    # a city with no value at all is not assessed: not ranked among the others, no stars
    assessed = [
        c
        for c in cities
        if any(v.get("value") is not None for v in values.get(c["code"], {}).values())
    ]
    allocation = allocate(
        policy,
        [
            CityResult(
                c["code"],
                scored[c["code"]].stars,
                scored[c["code"]].total,
                scored[c["code"]].bonus,
                c["previous_stars"],
            )
            for c in assessed
        ],
    )
    allocation += [
        Allocation(c["code"], None, 0, 0.0, 0.0, NOT_ASSESSED, NOT_ASSESSED_ZH)
        for c in cities
        if c not in assessed
    ]
    by_code = {c["code"]: c for c in cities}
    reachable = {a.id: a.weight - a.unallocated for a in catalogue.areas}
    ranked = []
    for award in allocation:
        city, score = by_code[award.code], scored[award.code]
        entered = values.get(award.code, {})
        judged = award.rank is not None
        ranked.append(
            RankedCity(
                **city,  # code, names, previous stars and total
                rank=award.rank,
                stars=score.stars if judged else 0,
                subtype=score.subtype if judged else None,
                total=score.total if judged else 0.0,
                bonus=score.bonus if judged else 0.0,
                score=award.score,
                vetoed=tuple(score.vetoed),
                reasons=tuple(score.reasons),
                reasons_zh=tuple(score.reasons_zh),
                amount=award.amount,
                award_reason=award.reason,
                award_reason_zh=award.reason_zh,
                missing=tuple(
                    i.id for i in catalogue.indicators if entered.get(i.id, {}).get("value") is None
                ),
                areas=tuple(
                    AreaShare(
                        a.id,
                        round(a.points, 6),
                        a.weight,
                        a.bonus,
                        # share of the points the area's indicators can give
                        round(a.points / reachable[a.id], 6) if reachable[a.id] else 0.0,
                    )
                    for a in score.areas
                ),
                indicators=tuple(
                    ScoredIndicator(
                        s.id,
                        s.value,
                        round(s.level, 6),
                        round(s.points, 6),
                        s.reason,
                        s.reason_zh,
                        **{k: entered.get(s.id, {}).get(k) for k in PROVENANCE_FIELDS},
                        alternative=_alternative(entered.get(s.id, {})),
                        choice=entered.get(s.id, {}).get("choice"),
                    )
                    for s in score.indicators
                ),
                not_assessed=None if judged else True,
            )
        )
    given = sum(a.amount for a in allocation)
    return RoundResults(
        round=RoundMeta(meta["id"], meta["title"], meta["year"]),
        catalogue=CatalogueSummary.of(catalogue),
        policy=policy.model_dump(mode="json"),
        merit_rule=MERIT,
        merit_rule_zh=MERIT_ZH,
        cities=tuple(ranked),
        allocation=AllocationTotals(
            budget=policy.budget,
            allocated=given,
            left=policy.budget - given,
            eligible=sum(1 for a in allocation if a.stars >= policy.min_stars),
        ),
    )


def _alternative(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The value beside the one that counts (its kind, value and where it comes from)."""
    other = entry.get("alternative")
    if not other:
        return None
    return {k: other.get(k) for k in ("kind", "value", "source", "entered_by", "entered_at")}
