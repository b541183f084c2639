"""Ranking and awards: a hand-checked allocation and properties that must always hold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from grading.awards import AwardPolicy, CityResult, allocate, rank

PROVISIONAL = {"status": "provisional", "source": "test"}


def _policy(**kw):  # type: ignore[no-untyped-def]
    base = {
        "id": "p",
        "title": "test",
        "budget": 20_000_000,
        "method": "per_star",
        "amounts": {3: 4_000_000, 4: 8_000_000, 5: 12_000_000},
        "step_up": 1_000_000,
        "provenance": PROVISIONAL,
    }
    return AwardPolicy(**{**base, **kw})


def test_hand_checked_allocation() -> None:
    """The five cities of the scoring example (see test_grading): C2 5 stars 100 points, C1 4
    stars 80 (3 stars last round), C5 3 stars 70, C4 2 stars 52, C3 0 stars (vetoed) 32.

    Budget 20M, cap 12M, 4M/8M/12M for 3/4/5 stars, 1M more for rising a level:
    C2 first: 12M (8M left). C1: 8M + 1M = 9M wanted, only 8M left -> 8M (0 left).
    C5: 4M wanted, nothing left -> 0. C4 and C3 are under three stars -> 0. Sum 20M.
    """
    cities = [
        CityResult("C3", 0, 28, 4),
        CityResult("C1", 4, 76, 4, previous_stars=3),
        CityResult("C4", 2, 48, 4),
        CityResult("C2", 5, 100, 0),
        CityResult("C5", 3, 68, 2),
    ]
    out = {a.code: a for a in allocate(_policy(), cities)}
    assert [out[c].rank for c in ("C2", "C1", "C5", "C4", "C3")] == [1, 2, 3, 4, 5]
    assert [out[c].amount for c in ("C2", "C1", "C5", "C4", "C3")] == [
        12_000_000,
        8_000_000,
        0,
        0,
        0,
    ]
    assert "rising from 3 stars" in out["C1"].reason and "budget was left" in out["C1"].reason
    assert "below the 3 needed" in out["C4"].reason


def test_a_policy_must_price_every_eligible_level() -> None:
    with pytest.raises(ValidationError, match="needs an amount for"):
        _policy(amounts={3: 1, 4: 2})


CITY = st.builds(
    CityResult,
    code=st.text("abcdefgh", min_size=1, max_size=4),
    stars=st.integers(0, 5),
    total=st.floats(0, 100),
    bonus=st.floats(0, 5),
    previous_stars=st.one_of(st.none(), st.integers(0, 5)),
)


@settings(max_examples=300, deadline=None)
@given(
    cities=st.lists(CITY, max_size=16, unique_by=lambda c: c.code),
    budget=st.floats(0, 2e8),
    per_point=st.floats(0, 3e5),
    method=st.sampled_from(["per_star", "per_point"]),
    seed=st.randoms(),
)
def test_allocation_properties(cities, budget, per_point, method, seed) -> None:  # type: ignore[no-untyped-def]
    policy = _policy(budget=budget, method=method, per_point=per_point)
    out = allocate(policy, cities)
    assert sum(a.amount for a in out) <= budget + 1e-6
    assert all(0 <= a.amount <= policy.cap_per_city for a in out)
    by_code = {c.code: c for c in cities}
    assert all(a.amount == 0 for a in out if by_code[a.code].stars < 3)
    shuffled = list(cities)
    seed.shuffle(shuffled)
    assert allocate(policy, shuffled) == out
    assert [c.code for c in rank(shuffled)] == [c.code for c in rank(cities)]
