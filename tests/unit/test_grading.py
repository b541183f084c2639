"""Catalogues and the scoring engine: built-in catalogues, clear refusals, a hand-checked example
and a property test."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cim.errors import InvalidInput
from grading.catalogue import Catalogue, built_in, json_schema, parse_catalogue
from grading.scoring import score_city

SMALL = {
    "id": "small-test",
    "version": "1",
    "standard": "hand-made for this test",
    "title_zh": "测试",
    "title_en": "Test",
    "scale": 100,
    "areas": [
        {
            "id": "A",
            "name_zh": "甲",
            "name_en": "A",
            "weight": 60,
            "provenance": {"status": "provisional", "source": "test"},
        },
        {
            "id": "B",
            "name_zh": "乙",
            "name_en": "B",
            "weight": 40,
            "provenance": {"status": "provisional", "source": "test"},
        },
        {
            "id": "X",
            "name_zh": "特色",
            "name_en": "Bonus",
            "weight": 10,
            "bonus": True,
            "cap": 4,
            "provenance": {"status": "provisional", "source": "test"},
        },
    ],
    "indicators": [
        {
            "id": "a1",
            "name_zh": "甲一",
            "name_en": "a1",
            "area": "A",
            "weight": 40,
            "unit": "%",
            "range": {"min": 0, "max": 100},
            "scoring": {"method": "thresholds", "thresholds": [10, 20, 30, 40, 50]},
            "provenance": {"status": "provisional", "source": "test"},
        },
        {
            "id": "a2",
            "name_zh": "甲二",
            "name_en": "a2",
            "area": "A",
            "weight": 20,
            "veto": True,
            "scoring": {"method": "yes_no"},
            "provenance": {"status": "provisional", "source": "t"},
        },
        {
            "id": "b1",
            "name_zh": "乙一",
            "name_en": "b1",
            "area": "B",
            "weight": 40,
            "unit": "min",
            "range": {"min": 0},
            "direction": "lower",
            "scoring": {"method": "linear", "worst": 100, "best": 0},
            "provenance": {"status": "provisional", "source": "test"},
        },
        {
            "id": "x1",
            "name_zh": "特一",
            "name_en": "x1",
            "area": "X",
            "weight": 10,
            "bonus": True,
            "unit": "count",
            "range": {"min": 0, "integer": True},
            "scoring": {"method": "thresholds", "thresholds": [1, 2, 3, 4, 5]},
            "provenance": {"status": "provisional", "source": "test"},
        },
    ],
    "stars": {
        "thresholds": {1: 30, 2: 45, 3: 60, 4: 75, 5: 90},
        "min_area_share": {4: 0.5},
        "growth_points": 5,
        "provenance": {"status": "provisional", "source": "test"},
    },
}


def _small():
    return parse_catalogue(yaml.safe_dump(SMALL, allow_unicode=True))


def test_built_in_catalogues_load_with_provenance() -> None:
    gbt = built_in("gbt-33356-2016")
    weights = {a.name_zh: a.weight for a in gbt.areas}
    assert weights == {
        "惠民服务": 37,
        "精准治理": 9,
        "生态宜居": 8,
        "智能设施": 7,
        "信息资源": 7,
        "网络安全": 8,
        "改革创新": 4,
        "市民体验": 20,
    }
    second = {i.name_zh: i.weight for i in gbt.indicators if i.area == "huimin"}
    assert second == {
        "政务服务": 8,
        "交通服务": 3,
        "社保服务": 3,
        "医疗服务": 3,
        "教育服务": 3,
        "就业服务": 3,
        "城市服务": 7,
        "帮扶服务": 5,
    }
    assert all(a.provenance.status == "published" for a in gbt.areas)
    db37 = built_in("db37-3890.1-2020")
    assert [a.name_zh for a in db37.areas] == [
        "数字惠民",
        "数字政府",
        "数字经济",
        "基础设施",
        "保障措施",
        "地方特色",
    ]
    assert [a.bonus for a in db37.areas] == [False] * 5 + [True]
    # nothing of the Shandong weights is public: every number is marked provisional
    assert all(a.provenance.status == "provisional" for a in db37.areas)
    assert all(i.provenance.status == "provisional" for i in db37.indicators)
    assert db37.stars.provenance.status == "provisional"
    assert '"title"' in json_schema() or "Catalogue" in json_schema()


@pytest.mark.parametrize(
    "change,words",
    [
        (lambda c: c["areas"][0].update(weight=50), "area weights add up to 90"),
        (lambda c: c["indicators"][0].update(weight=30), "area A: indicator weights (50)"),
        (
            lambda c: c["indicators"][0]["scoring"].update(thresholds=[10, 30, 20, 40, 50]),
            "strictly increasing",
        ),
        (lambda c: c["indicators"][2].update(area="Z"), "unknown area 'Z'"),
        (lambda c: c["indicators"][1].update(id="a1"), "indicator ids must be unique"),
        (lambda c: c["stars"]["thresholds"].update({5: 70}), "a higher star level needs"),
        (lambda c: c["indicators"][0].pop("provenance"), "provenance"),
    ],
)
def test_bad_catalogues_are_refused_with_the_reason(change, words) -> None:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(SMALL)
    change(doc)
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_catalogue(yaml.safe_dump(doc, allow_unicode=True), "test.yaml")


def test_hand_checked_five_cities() -> None:
    """Worked out by hand (points = weight x level / 5; bonus capped at 4):

    C1: a1=35 -> level 3 -> 24; a2 yes -> 20; b1=20 min -> 5*(100-20)/100 = 4 -> 32;
        x1=5 -> level 5 -> 10, capped 4. Total 76 + bonus 4 = 80: 4 stars (>=75, and every area
        has half its weight: A 44 >= 30, B 32 >= 20); not 5 (needs 90). Previous round 70,
        +10 >= 5 -> growth type 成长型.
    C2: a1=50 -> 5 -> 40; yes -> 20; b1=0 -> 5 -> 40; x1=0 -> level 0 -> 0. 100 -> 5 stars.
    C3: a1=12 -> 1 -> 8; a2 no -> 0, a veto item -> 0 stars; b1=50 -> 2.5 -> 20; x1=2 -> 4.
        Total 28 + bonus 4 = 32, but vetoed.
    C4: a1=25 -> 2 -> 16; yes 20; b1=70 -> 1.5 -> 12; x1=3 -> 6, capped 4. 48 + 4 = 52: 2 stars
        (45 <= 52 < 60).
    C5: a1=45 -> 4 -> 32; yes 20; b1=60 -> 2 -> 16; x1=1 -> 1 -> 2. 68 + 2 = 70: 3 stars.
    """
    cat = _small()
    c1 = score_city(cat, {"a1": 35, "a2": "yes", "b1": 20, "x1": 5}, previous_total=70)
    assert (c1.total, c1.bonus, c1.stars, c1.subtype) == (76, 4, 4, "成长型")
    assert [s.points for s in c1.indicators] == [24, 20, 32, 10]
    assert "reaches level 3 (30); level 4 needs 40" in c1.indicators[0].reason
    assert any("capped at 4" in r for r in c1.reasons)
    assert score_city(cat, {"a1": 35, "a2": "yes", "b1": 20, "x1": 5}).subtype == "基础型"
    c2 = score_city(cat, {"a1": 50, "a2": True, "b1": 0, "x1": 0})
    assert (c2.total, c2.bonus, c2.stars, c2.subtype) == (100, 0, 5, None)
    c3 = score_city(cat, {"a1": 12, "a2": "no", "b1": 50, "x1": 2})
    assert (c3.total, c3.bonus, c3.stars, c3.vetoed) == (28, 4, 0, ["a2"])
    c4 = score_city(cat, {"a1": 25, "a2": "yes", "b1": 70, "x1": 3})
    assert (c4.total, c4.bonus, c4.stars) == (48, 4, 2)
    c5 = score_city(cat, {"a1": 45, "a2": "yes", "b1": 60, "x1": 1})
    assert (c5.total, c5.bonus, c5.stars) == (68, 2, 3)
    missing = score_city(cat, {})
    assert missing.indicators[0].reason == "no value" and missing.stars == 0


VALUES = st.fixed_dictionaries(
    {
        "a1": st.floats(0, 60),
        "a2": st.sampled_from(["yes", "no"]),
        "b1": st.floats(0, 120),
        "x1": st.floats(0, 6),
    }
)


@settings(max_examples=300, deadline=None)
@given(values=VALUES, which=st.sampled_from(["a1", "b1", "x1", "a2"]), step=st.floats(0, 50))
def test_improving_an_indicator_never_lowers_the_score(values, which, step) -> None:  # type: ignore[no-untyped-def]
    cat = _small()
    before = score_city(cat, values)
    better = dict(values)
    if which == "a2":
        better["a2"] = "yes"
    elif which == "b1":  # lower is better
        better["b1"] = values["b1"] - step
    else:
        better[which] = values[which] + step
    after = score_city(cat, better)
    assert after.total + after.bonus >= before.total + before.bonus - 1e-9
    assert after.stars >= before.stars


def test_catalogue_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from cli.main import main

    runner = CliRunner()
    listed = runner.invoke(main, ["grade", "catalogue", "list"])
    assert listed.exit_code == 0 and "db37-3890.1-2020" in listed.output
    good = tmp_path / "mine.yaml"
    good.write_text(yaml.safe_dump(SMALL, allow_unicode=True), encoding="utf-8")
    ok = runner.invoke(main, ["grade", "catalogue", "validate", str(good)])
    assert ok.exit_code == 0 and "valid catalogue small-test" in ok.output
    bad = copy.deepcopy(SMALL)
    bad["areas"][1]["weight"] = 10
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    refused = runner.invoke(main, ["grade", "catalogue", "validate", str(broken)])
    assert refused.exit_code == 2 and str(broken) in refused.output
    assert "area weights add up to 70" in refused.output
    schema = json.loads(runner.invoke(main, ["grade", "catalogue", "schema"]).output)
    assert "indicators" in schema["properties"]


def test_a_missing_veto_value_is_not_a_veto() -> None:
    cat = built_in("db37-3890.1-2020")
    values: dict[str, object] = {i.id: None for i in cat.indicators}
    missing = score_city(cat, values)
    assert missing.vetoed == [] and missing.stars == 0
    assert any("has no value yet" in r for r in missing.reasons)
    assert any("尚无数值" in r for r in missing.reasons_zh)
    values["baozhang.security"] = 9  # far beyond the worst threshold (4 incidents)
    vetoed = score_city(cat, values)
    assert vetoed.vetoed == ["baozhang.security"] and vetoed.stars == 0
    assert any(r.startswith("veto: baozhang.security") for r in vetoed.reasons)


def test_whether_bonus_points_count_toward_stars_is_the_catalogues_rule() -> None:
    """A1 35 -> level 3 (24 points), a2 yes (20), b1 30 min -> level 3.5 (28): total 72, and
    the bonus capped at 4. With the bonus, 76 reaches four stars (75); without, 72 stays at
    three (60); either way the reasons say what the bonus did."""
    values = {"a1": 35, "a2": "yes", "b1": 30, "x1": 5}
    counted = score_city(Catalogue.model_validate(copy.deepcopy(SMALL)), values)
    assert (counted.total, counted.bonus, counted.stars) == (72, 4, 4)
    assert counted.reasons[-1] == (
        "bonus points count toward the star level: 4 stars with them, 3 without"
    )
    assert counted.reasons_zh[-1] == "加分项计入星级：计入加分 4 星，不计 3 星"
    doc = copy.deepcopy(SMALL)
    doc["stars"]["bonus_counts"] = False
    apart = score_city(Catalogue.model_validate(doc), values)
    assert (apart.total, apart.bonus, apart.stars) == (72, 4, 3)
    assert "4 stars need 75 points, the city has 72.00" in apart.reasons
    assert apart.reasons[-1] == "bonus points do not count toward the star level (4 not counted)"


def test_a_city_type_only_where_the_catalogue_says_how() -> None:
    doc = copy.deepcopy(SMALL)
    del doc["stars"]["growth_points"]
    four = score_city(Catalogue.model_validate(doc), {"a1": 35, "a2": "yes", "b1": 20, "x1": 5}, 60)
    assert (four.stars, four.subtype) == (4, None)  # no rule for 基础型/成长型: no type
    assert built_in("db37-3890.1-2020").stars.growth_points is None  # the rule is not public
