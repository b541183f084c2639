"""A correction changes the value and keeps its source and evidence unless it replaces them;
every value keeps its history: old -> new, who, when and why."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from grading import access, evidence, values
from grading.templates import import_values, round_template, template_bytes
from tests.grading.one_city import one_city_round

ROUND = "fix-2026"
CITY, IND = "370100", "zhengfu.online"


@pytest.fixture
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    admin = access.cli_actor()
    one_city_round(engine, ROUND, CITY, admin)
    proof = evidence.add_evidence(
        engine,
        admin,
        ROUND,
        evidence.EvidenceFile("年报.pdf", b"%PDF-1.4 report", "application/pdf"),
    )
    values.set_values(
        engine,
        admin,
        ROUND,
        [values.ValueEntry(CITY, IND, 94.8, source="省政务服务平台 年报", evidence_sha256=proof)],
    )
    return engine


def _stored(engine: Engine) -> dict:  # type: ignore[type-arg]
    return values.entered(engine, ROUND)[CITY][IND]


def test_a_corrected_value_keeps_its_source_and_evidence(db: Engine) -> None:
    before = _stored(db)
    admin = access.cli_actor()
    values.set_values(db, admin, ROUND, [values.ValueEntry(CITY, IND, 95.1, reason="录入笔误")])
    after = _stored(db)
    assert after["value"] == 95.1
    assert (after["source"], after["evidence_sha256"], after["evidence_filename"]) == (
        before["source"],
        before["evidence_sha256"],
        "年报.pdf",
    )
    # replaced only when the correction says so
    values.set_values(
        db, admin, ROUND, [values.ValueEntry(CITY, IND, 95.1, source="复核", evidence_sha256=None)]
    )
    assert (_stored(db)["source"], _stored(db)["evidence_sha256"]) == ("复核", None)


def test_a_template_with_empty_cells_keeps_them(db: Engine) -> None:
    rows = round_template(db, ROUND)
    row = next(r for r in rows if r["indicator_id"] == IND)
    row.update(value="96", source="", evidence_file="")  # corrected value, cells left empty
    done = import_values(
        db, access.cli_actor(), ROUND, template_bytes(rows, "v.csv"), "v.csv", reason="复核更正"
    )
    assert done.changed == 1
    stored = _stored(db)
    assert stored["value"] == 96 and stored["source"] == "省政务服务平台 年报"
    assert stored["evidence_filename"] == "年报.pdf"


def test_every_value_keeps_its_history(db: Engine) -> None:
    admin = access.cli_actor()
    values.set_values(db, admin, ROUND, [values.ValueEntry(CITY, IND, 95.1, reason="录入笔误")])
    reviewer = access.create_key(db, admin, "r", "reviewer")[1]
    writer = access.create_key(db, admin, "a", "admin")[1]
    client = TestClient(create_app(engine=db))
    put = client.put(
        f"/grading/rounds/{ROUND}/cities/{CITY}/values/{IND}",
        json={"value": 97, "reason": "省里复核"},
        headers={"Authorization": f"Bearer {writer}"},
    )
    assert put.status_code == 200
    assert put.json()["value"]["source"] == "省政务服务平台 年报"  # the API keeps it too
    history = client.get(
        f"/grading/rounds/{ROUND}/cities/{CITY}/values/{IND}/history",
        headers={"Authorization": f"Bearer {reviewer}"},
    ).json()
    assert [(h["old"] or {}).get("value") for h in history] == [None, 94.8, 95.1]
    assert [h["new"]["value"] for h in history] == [94.8, 95.1, 97]
    assert [h["new"].get("reason") for h in history] == [None, "录入笔误", "省里复核"]
    assert history[0]["actor"] == admin.name and history[2]["actor"].startswith("key:")
    assert all(h["at"] for h in history)
    assert values.history(db, ROUND, CITY, IND) == history
