"""A round's results document, the thing a final round freezes and hashes: the same cities and
values give the same document (byte for byte) whatever order they arrive in, and a what-if
compares two documents city by city."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from grading.assessment import round_results
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.results import RoundResults, canonical_json, what_if

CATALOGUE = built_in("db37-3890.1-2020")
POLICY = built_in_policy("shandong-example")
META = {"id": "r", "title": "t", "year": 2026}


def _value(ind, x: float):  # type: ignore[no-untyped-def]
    """A value for the indicator from x in [0, 1]."""
    if ind.scoring.method == "yes_no":
        return x > 0.5
    if ind.scoring.method == "levels":
        grades = ind.scoring.best_first()
        return grades[min(len(grades) - 1, int((1 - x) * len(grades)))]
    t = ind.scoring.thresholds
    return t[0] + (t[4] - t[0]) * (2 * x - 0.5)


CITY_VALUES = st.lists(
    st.tuples(
        st.sampled_from([f"37{k:02d}00" for k in range(1, 18)]),
        st.lists(
            st.floats(0, 1), min_size=len(CATALOGUE.indicators), max_size=len(CATALOGUE.indicators)
        ),
        st.one_of(st.none(), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda c: c[0],
)


def _inputs(rows):  # type: ignore[no-untyped-def]
    cities = [
        {
            "code": code,
            "name_zh": code,
            "name_en": code,
            "previous_stars": prev,
            "previous_total": None,
        }
        for code, _, prev in rows
    ]
    values = {
        code: {
            i.id: {"value": _value(i, x), "source": "s"}
            for i, x in zip(CATALOGUE.indicators, xs, strict=True)
        }
        for code, xs, _ in rows
    }
    return cities, values


@settings(max_examples=60, deadline=None)
@given(rows=CITY_VALUES, seed=st.randoms())
def test_same_inputs_same_document_whatever_the_order(rows, seed) -> None:  # type: ignore[no-untyped-def]
    cities, values = _inputs(rows)
    first = round_results(META, CATALOGUE, POLICY, cities, values).to_dict()
    shuffled_cities = list(cities)
    seed.shuffle(shuffled_cities)
    shuffled_values = {}
    for code in seed.sample(list(values), len(values)):
        items = list(values[code].items())
        seed.shuffle(items)
        shuffled_values[code] = dict(items)
    again = round_results(META, CATALOGUE, POLICY, shuffled_cities, shuffled_values).to_dict()
    assert canonical_json(again) == canonical_json(first)
    assert [c["rank"] for c in first["cities"]] == list(range(1, len(cities) + 1))
    assert first["allocation"]["allocated"] <= POLICY.budget
    assert all(c["amount"] == 0 for c in first["cities"] if c["stars"] < POLICY.min_stars)


def test_what_if_lines_up_the_same_cities() -> None:
    cities, values = _inputs([("370100", [0.7] * 18, None), ("370200", [0.6] * 18, 2)])
    results_a = round_results(META, CATALOGUE, POLICY, cities, values)
    richer = POLICY.model_copy(update={"id": "richer", "amounts": {3: 5e6, 4: 9e6, 5: 12e6}})
    results_b = round_results(META, CATALOGUE, richer, cities, values)
    a, b = results_a.to_dict(), results_b.to_dict()
    rows = {r["code"]: r for r in what_if(results_a, results_b)}
    for code in ("370100", "370200"):
        ca = next(c for c in a["cities"] if c["code"] == code)
        cb = next(c for c in b["cities"] if c["code"] == code)
        assert rows[code]["amount_change"] == cb["amount"] - ca["amount"]
        assert rows[code]["rank_change"] == 0  # a policy does not change the merit order
    stars = {c["code"]: c["stars"] for c in a["cities"]}
    assert stars == {"370100": 4, "370200": 3}
    assert rows["370100"]["amount_change"] == 9e6 - 8e6
    # 370200 rose from 2 stars: 4,000,000 + 2,000,000 step-up before, 5,000,000 + 2,000,000 now
    assert (rows["370200"]["a"]["amount"], rows["370200"]["b"]["amount"]) == (6e6, 7e6)


@settings(max_examples=30, deadline=None)
@given(rows=CITY_VALUES)
def test_the_document_reads_back_to_the_same_bytes(rows) -> None:  # type: ignore[no-untyped-def]
    """A final round's frozen results are read back from JSON: the typed results they make
    write the same canonical bytes, and so keep their SHA-256."""
    import orjson

    cities, values = _inputs(rows)
    first = round_results(META, CATALOGUE, POLICY, cities, values)
    stored = orjson.loads(first.to_json())
    again = RoundResults.from_dict(stored)
    assert again == first
    assert again.to_json() == first.to_json() == canonical_json(stored)
    assert again.sha256() == first.sha256()


def test_results_frozen_by_an_older_version_still_read() -> None:
    """Results frozen before a field existed read back with that field empty (or its default)
    instead of failing: a final round stays readable when the document grows."""
    import orjson

    cities, values = _inputs([("370100", [0.7] * len(CATALOGUE.indicators), 3)])
    stored = orjson.loads(round_results(META, CATALOGUE, POLICY, cities, values).to_json())
    del stored["merit_rule_zh"]
    for city in stored["cities"]:
        del city["reasons_zh"]
    older = RoundResults.from_dict(stored)
    assert older.merit_rule_zh is None
    assert older.cities[0].reasons_zh is None
    assert older.cities[0].code == "370100"
    assert older.ranking_dict()["cities"][0]["code"] == "370100"


def test_numbers_that_rest_on_provisional_values_are_marked() -> None:
    """The built-in example catalogue and policy are provisional: every ranking row, allocation
    row and scored indicator says so, and the annex lists each provisional number with its
    basis. A catalogue and policy the committee confirmed carry no mark."""
    cities, values = _inputs([("370100", [0.7] * len(CATALOGUE.indicators), 3)])
    res = round_results(META, CATALOGUE, POLICY, cities, values)
    assert all(c["provisional"] for c in res.ranking_dict()["cities"])
    assert all(c["provisional"] for c in res.allocation_dict()["cities"])
    city = res.city_dict("370100")
    assert city["provisional"] and all(i["provisional"] for i in city["indicators"])
    annex = {p["what"]: p for p in res.provisional_numbers()}
    assert annex["policy budget"]["value"] == "60000000.0"
    assert "policy amounts" in annex and "policy step_up" in annex
    assert "policy cap_per_city" not in annex  # published: 12,000,000 per city
    assert "star rule" in annex and "indicator zhengfu.online weight and thresholds" in annex

    confirmed = CATALOGUE.model_copy(deep=True)
    for item in (*confirmed.areas, *confirmed.indicators, confirmed.stars):
        item.provenance.status = "published"
    adopted = POLICY.model_copy(update={"placeholders": []}, deep=True)
    adopted.provenance.status = "published"
    final = round_results(META, confirmed, adopted, cities, values)
    assert not any(c["provisional"] for c in final.ranking_dict()["cities"])
    assert not any(c["provisional"] for c in final.allocation_dict()["cities"])
    assert final.provisional_numbers() == []
    # the canonical document (what a final round freezes) is not changed by the marks
    assert final.to_json() == round_results(META, confirmed, adopted, cities, values).to_json()
    assert b"provisional_numbers" not in res.to_json()
