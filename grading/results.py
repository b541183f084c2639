"""A round's results as one plain document: every city's scores with reasons, the ranking and the
allocation. Pure: the same inputs give the same document (and so the same SHA-256), which is
what lets a final round be recomputed and checked. The API, the dashboard and the report all
read this document.
"""

from __future__ import annotations

from typing import Any

from grading.awards import MERIT, MERIT_ZH, AwardPolicy, CityResult, allocate
from grading.catalogue import Catalogue
from grading.scoring import score_city


def catalogue_summary(catalogue: Catalogue) -> dict[str, Any]:
    """What a reader of the results needs of the catalogue."""
    return {
        "id": catalogue.id,
        "version": catalogue.version,
        "standard": catalogue.standard,
        "title_zh": catalogue.title_zh,
        "title_en": catalogue.title_en,
        "scale": catalogue.scale,
        "areas": [
            {
                "id": a.id,
                "name_zh": a.name_zh,
                "name_en": a.name_en,
                "weight": a.weight,
                "bonus": a.bonus,
                "cap": a.cap,
                "provisional": a.provenance.status == "provisional",
            }
            for a in catalogue.areas
        ],
        "indicators": [
            {
                "id": i.id,
                "name_zh": i.name_zh,
                "name_en": i.name_en,
                "area": i.area,
                "weight": i.weight,
                "unit": i.unit,
                "direction": i.direction,
                "method": i.scoring.method,
                "veto": i.veto,
                "bonus": i.bonus,
                "computed_from_cim": i.computed_from_cim,
                "provisional": i.provenance.status == "provisional",
                "provenance": i.provenance.source,
            }
            for i in catalogue.indicators
        ],
        "star_thresholds": {str(k): v for k, v in sorted(catalogue.stars.thresholds.items())},
        "star_rule_provisional": catalogue.stars.provenance.status == "provisional",
    }


def round_results(
    meta: dict[str, Any],
    catalogue: Catalogue,
    policy: AwardPolicy,
    cities: list[dict[str, Any]],
    values: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """Score every city, rank them and allocate the awards.

    `cities` are dicts with code, name_zh, name_en, previous_stars, previous_total; `values`
    maps city code -> indicator id -> the stored value (value, unit, source, evidence...).
    """
    scored: dict[str, Any] = {}
    for city in cities:
        entered = values.get(city["code"], {})
        score = score_city(
            catalogue, {k: v["value"] for k, v in entered.items()}, city["previous_total"]
        )
        scored[city["code"]] = score
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
            for c in cities
        ],
    )
    by_code = {c["code"]: c for c in cities}
    reachable = {a.id: a.weight - a.unallocated for a in catalogue.areas}
    out_cities = []
    for award in allocation:
        city, score = by_code[award.code], scored[award.code]
        entered = values.get(award.code, {})
        out_cities.append(
            {
                **city,
                "rank": award.rank,
                "stars": score.stars,
                "subtype": score.subtype,
                "total": score.total,
                "bonus": score.bonus,
                "score": award.score,
                "vetoed": score.vetoed,
                "reasons": score.reasons,
                "reasons_zh": score.reasons_zh,
                "amount": award.amount,
                "award_reason": award.reason,
                "award_reason_zh": award.reason_zh,
                "missing": [
                    i.id for i in catalogue.indicators if entered.get(i.id, {}).get("value") is None
                ],
                "areas": [
                    {
                        "id": a.id,
                        "points": round(a.points, 6),
                        "weight": a.weight,
                        "bonus": a.bonus,
                        # share of the points the area's indicators can give
                        "share": round(a.points / reachable[a.id], 6) if reachable[a.id] else 0.0,
                    }
                    for a in score.areas
                ],
                "indicators": [
                    {
                        "id": s.id,
                        "value": s.value,
                        "level": round(s.level, 6),
                        "points": round(s.points, 6),
                        "reason": s.reason,
                        "reason_zh": s.reason_zh,
                        **{
                            k: entered.get(s.id, {}).get(k)
                            for k in (
                                "source",
                                "link",
                                "note",
                                "evidence_sha256",
                                "evidence_filename",
                                "computed",
                                "entered_by",
                                "entered_at",
                            )
                        },
                    }
                    for s in score.indicators
                ],
            }
        )
    given = sum(a.amount for a in allocation)
    return {
        "round": meta,
        "catalogue": catalogue_summary(catalogue),
        "policy": policy.model_dump(mode="json"),
        "merit_rule": MERIT,
        "merit_rule_zh": MERIT_ZH,
        "cities": out_cities,
        "allocation": {
            "budget": policy.budget,
            "allocated": given,
            "left": policy.budget - given,
            "eligible": sum(1 for a in allocation if a.stars >= policy.min_stars),
        },
    }


def what_if(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Two results of the same round side by side (e.g. two policies or two catalogues), in the
    order of the second, with the change of rank, stars and amount."""
    first = {c["code"]: c for c in a["cities"]}
    if set(first) != {c["code"] for c in b["cities"]}:
        raise ValueError("the two results are not of the same cities")
    rows = []
    for c in b["cities"]:
        old = first[c["code"]]
        rows.append(
            {
                "code": c["code"],
                "name_zh": c["name_zh"],
                "name_en": c["name_en"],
                "a": {k: old[k] for k in ("rank", "stars", "score", "amount")},
                "b": {k: c[k] for k in ("rank", "stars", "score", "amount")},
                "amount_change": c["amount"] - old["amount"],
                "rank_change": old["rank"] - c["rank"],
            }
        )
    return rows
