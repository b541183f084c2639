"""A round compared with its previous round (the final round the committee linked to it): per
city, the rank, stars, score and award then and now, and the points of each area.

The previous round's results are its frozen ones (checked against their SHA-256); the current
round's are computed now (frozen too once final). Areas are matched by id, and only those both
rounds have are compared; when the two rounds use different catalogues, the comparison says so,
and the areas' shares of their points compare where their points do not. A city in only one of
the rounds shows with the other side empty; a city not assessed on either side has no change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from cim.errors import NotFound
from grading.outcome import ResultsCache, results
from grading.results import Document, RankedCity, RoundResults
from grading.rounds import get_round


@dataclass(frozen=True)
class Standing(Document):
    """A city's place in one round (rank None: not assessed)."""

    rank: int | None
    stars: int
    score: float
    amount: float
    not_assessed: bool


@dataclass(frozen=True)
class AreaChange(Document):
    """A city's points in one area, then and now (None: the area is not in that round, or the
    city was not assessed), and its share of what the area can give, in percent: when the two
    rounds weigh an area differently, the shares compare and the points do not."""

    id: str
    name_zh: str
    name_en: str
    before: float | None
    now: float | None
    change: float | None
    share_before: float | None
    share_now: float | None
    share_change: float | None


@dataclass(frozen=True)
class CityChange(Document):
    """One city then and now. `rank_change` > 0: it moved up that many places."""

    code: str
    name_zh: str
    name_en: str
    before: Standing | None
    now: Standing | None
    rank_change: int | None
    stars_change: int | None
    score_change: float | None
    amount_change: float | None
    areas: tuple[AreaChange, ...]


@dataclass(frozen=True)
class Comparison(Document):
    """The round and its previous round, city by city."""

    round_id: str
    previous_round_id: str
    previous_title: str
    previous_year: int
    previous_sha256: str
    same_catalogue: bool
    catalogues: tuple[str, str]  # previous, current: "id version"
    cities: tuple[CityChange, ...]


def _standing(c: RankedCity) -> Standing:
    return Standing(c.rank, c.stars, c.score, c.amount, bool(c.not_assessed))


def _areas(a: RoundResults, b: RoundResults) -> list[tuple[str, str, str]]:
    """(id, zh, en) of the areas both rounds have, in the current round's order and names."""
    before = {area.id for area in a.catalogue.areas}
    return [(x.id, x.name_zh, x.name_en) for x in b.catalogue.areas if x.id in before]


def _change(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else round(y - x, 4)


def _city(
    code: str,
    then: RankedCity | None,
    now: RankedCity | None,
    areas: list[tuple[str, str, str]],
) -> CityChange:
    named = now or then
    assert named is not None
    before = None if then is None else _standing(then)
    after = None if now is None else _standing(now)
    # a city not assessed on either side has no change to show: 未评 is not a zero
    assessed = (
        before is not None
        and after is not None
        and not before.not_assessed
        and not after.not_assessed
    )
    shares_then = _shares(then)
    shares_now = _shares(now)
    rank_change = stars_change = score_change = amount_change = None
    if assessed and before is not None and after is not None:
        if before.rank is not None and after.rank is not None:
            rank_change = before.rank - after.rank
        stars_change = after.stars - before.stars
        score_change = _change(before.score, after.score)
        amount_change = _change(before.amount, after.amount)
    areas_changed = []
    for a_id, zh, en in areas:
        if a_id not in shares_then and a_id not in shares_now:
            continue
        p0, s0 = shares_then.get(a_id, (None, None))
        p1, s1 = shares_now.get(a_id, (None, None))
        areas_changed.append(
            AreaChange(
                a_id,
                zh,
                en,
                p0,
                p1,
                _change(p0, p1) if assessed else None,
                s0,
                s1,
                _change(s0, s1) if assessed else None,
            )
        )
    return CityChange(
        code=code,
        name_zh=named.name_zh,
        name_en=named.name_en,
        before=before,
        now=after,
        rank_change=rank_change,
        stars_change=stars_change,
        score_change=score_change,
        amount_change=amount_change,
        areas=tuple(areas_changed),
    )


def _shares(city: RankedCity | None) -> dict[str, tuple[float | None, float | None]]:
    """area id -> (points, share in percent) of a city, None for a city not assessed."""
    if city is None:
        return {}
    if city.not_assessed:
        return {a.id: (None, None) for a in city.areas}
    return {a.id: (a.points, round(100.0 * a.share, 4)) for a in city.areas}


def compare_results(
    round_id: str, previous_id: str, sha256: str, a: RoundResults, b: RoundResults
) -> Comparison:
    """The comparison of results `b` (this round) with `a` (its previous round)."""
    then = {c.code: c for c in a.cities}
    now = {c.code: c for c in b.cities}
    codes = [c.code for c in b.cities] + [c for c in then if c not in now]
    areas = _areas(a, b)
    cat_a = f"{a.catalogue.id} {a.catalogue.version}"
    cat_b = f"{b.catalogue.id} {b.catalogue.version}"
    return Comparison(
        round_id=round_id,
        previous_round_id=previous_id,
        previous_title=a.round.title,
        previous_year=a.round.year,
        previous_sha256=sha256,
        same_catalogue=cat_a == cat_b,
        catalogues=(cat_a, cat_b),
        cities=tuple(_city(c, then.get(c), now.get(c), areas) for c in codes),
    )


def compare(engine: Engine, round_id: str, cache: ResultsCache | None = None) -> Comparison:
    """A round compared with the previous round linked to it.

    Raises:
        NotFound: no such round, or none linked (saying how to link one).
        Conflict: the previous round's stored results do not match their SHA-256.
    """
    rnd = get_round(engine, round_id)
    if rnd.previous_round_id is None:
        raise NotFound(
            f"round {round_id} has no previous round linked: the committee links one with "
            f"cim grade round link {round_id} --previous ROUND --reason ..."
        )
    previous = get_round(engine, rnd.previous_round_id)
    a = results(engine, previous.id, cache)  # frozen, checked against its SHA-256
    b = results(engine, round_id, cache)
    return compare_results(round_id, previous.id, previous.results_sha256 or "", a, b)


def linked_comparison(
    engine: Engine, round_id: str, cache: ResultsCache | None = None
) -> Comparison | None:
    """The round compared with its previous round, or None when none is linked."""
    if get_round(engine, round_id).previous_round_id is None:
        return None
    return compare(engine, round_id, cache)
