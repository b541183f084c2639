"""Who may write what, through the /grading API: keys and roles (401 without a valid key, 403 with
too weak a role, and nothing changes either way), the round lifecycle (values only in a draft, a
final round refuses every edit and recomputes to its frozen results), evidence files, and the
append-only audit log that records every change with old and new value."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from cim.settings import ApiSettings
from grading import access, exemptions, outcome, rounds
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.results import canonical_json

ROUND = "t-2026"
CITIES = [
    rounds.CityEntry("370100", "济南市", "Jinan"),
    rounds.CityEntry("370200", "青岛市", "Qingdao"),
]


def _state(engine: Engine) -> tuple[Any, ...]:
    """Everything a refused write must leave as it was."""
    with engine.connect() as conn:
        return (
            # refused attempts are recorded (see below); nothing else may be
            conn.execute(
                text("SELECT count(*) FROM audit_log WHERE action <> 'refused'")
            ).scalar_one(),
            conn.execute(
                text(
                    "SELECT coalesce(json_agg(v ORDER BY city_code, indicator_id), '[]') "
                    "FROM grading_value v"
                )
            ).scalar_one(),
            conn.execute(text("SELECT status, policy FROM grading_round")).all(),
            conn.execute(text("SELECT count(*) FROM grading_evidence")).scalar_one(),
        )


@pytest.fixture
def setup(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str], Engine]]:
    admin = access.cli_actor()
    rounds.create_round(
        engine,
        admin,
        ROUND,
        "test round",
        2026,
        built_in("db37-3890.1-2020"),
        built_in_policy("shandong-example"),
        CITIES,
    )
    keys = {
        "viewer": access.create_key(engine, admin, "v", "viewer")[1],
        "assessor": access.create_key(engine, admin, "a", "assessor", ["370100"], [ROUND])[1],
        "reviewer": access.create_key(engine, admin, "r", "reviewer")[1],
        "reviewer2": access.create_key(engine, admin, "r2", "reviewer")[1],
        "admin": access.create_key(engine, admin, "boss", "admin")[1],
    }
    yield TestClient(create_app(engine=engine)), keys, engine


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _put(client: TestClient, key: str | None, city: str, ind: str, value: Any) -> Any:
    return client.put(
        f"/grading/rounds/{ROUND}/cities/{city}/values/{ind}",
        json={"value": value, "source": "test"},
        headers=_auth(key) if key else {},
    )


def test_writes_without_a_valid_key_get_401_and_change_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    _, keys, engine = setup
    # 15 bad keys from one address: above the default limit (tested in tests/api/test_security)
    client = TestClient(create_app(engine=engine, settings=ApiSettings(auth_failures=100)))
    before = _state(engine)
    revoked_id = keys["viewer"].split("_")[1]
    access.revoke_key(engine, access.cli_actor(), revoked_id)
    before = _state(engine)
    wrong_secret = keys["admin"][:-4] + "AAAA"
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"X-API-Key": wrong_secret},
        _auth(keys["viewer"]),  # revoked
    ):
        for method, url, body in (
            ("PUT", f"/grading/rounds/{ROUND}/cities/370100/values/tese.pilot", {"value": 3}),
            ("POST", f"/grading/rounds/{ROUND}/status", {"status": "submitted", "reason": "test"}),
            (
                "POST",
                "/grading/rounds",
                {
                    "id": "x",
                    "year": 2026,
                    "catalogue": "gbt-33356-2016",
                    "policy": "shandong-example",
                    "cities": "shandong",
                },
            ),
        ):
            r = client.request(method, url, json=body, headers=headers)
            assert r.status_code == 401, (headers, url, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert _state(engine) == before
    # the first 10 refusals of an address in a minute are written one by one, the rest counted
    tried = [e for e in access.audit_log(engine) if e["action"] == "refused"]
    assert len(tried) == 10 and {e["actor"] for e in tried} == {"anonymous"}
    assert {e["new"]["status"] for e in tried} == {401}
    assert not any("unwritten_before" in e["new"] for e in tried)
    # a minute later, the next one is written with the count of those that were not
    sampler = client.app.state.refusals
    sampler.clock = lambda: time.monotonic() + 61
    assert _put(client, None, "370100", "tese.pilot", 3).status_code == 401
    last = [e for e in access.audit_log(engine) if e["action"] == "refused"][-1]
    assert last["new"]["unwritten_before"] == 5 * 3 - 10


def test_too_weak_a_role_gets_403_and_changes_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    client, keys, engine = setup
    before = _state(engine)
    refused = [
        _put(client, keys["viewer"], "370100", "tese.pilot", 3),
        _put(client, keys["assessor"], "370200", "tese.pilot", 3),  # not the assessor's city
        client.post(
            f"/grading/rounds/{ROUND}/status",
            json={"status": "reviewed", "reason": "test"},
            headers=_auth(keys["assessor"]),
        ),
        client.put(
            f"/grading/rounds/{ROUND}/policy",
            headers=_auth(keys["reviewer"]),
            json=built_in_policy("shandong-example").model_dump(mode="json"),
        ),
        client.post(
            "/grading/rounds",
            headers=_auth(keys["reviewer"]),
            json={
                "id": "x",
                "year": 2026,
                "catalogue": "gbt-33356-2016",
                "policy": "shandong-example",
                "cities": "shandong",
            },
        ),
        client.post(
            f"/grading/rounds/{ROUND}/evidence?filename=a.txt",
            content=b"x",
            headers=_auth(keys["viewer"]),
        ),
    ]
    assert [r.status_code for r in refused] == [403] * 6, [r.text for r in refused]
    assert "assessor" in refused[0].json()["detail"]
    assert "not assigned to city 370200" in refused[1].json()["detail"]
    assert _state(engine) == before
    # each refused attempt is in the audit log, naming the key that tried and what it tried
    tried = [e for e in access.audit_log(engine) if e["action"] == "refused"]
    assert len(tried) == 6 and all(e["new"]["status"] == 403 for e in tried)
    assert tried[0]["target"] == f"PUT /grading/rounds/{ROUND}/cities/370100/values/tese.pilot"
    assert tried[0]["actor"].endswith("(v)") and tried[0]["round_id"] == ROUND
    assert "not assigned to city 370200" in tried[1]["new"]["why"]


def test_each_change_is_audited_with_old_and_new_value(setup) -> None:  # type: ignore[no-untyped-def]
    client, keys, engine = setup
    assert _put(client, keys["assessor"], "370100", "zhengfu.online", 91.5).status_code == 200
    r = _put(client, keys["assessor"], "370100", "zhengfu.online", "93%")
    assert r.status_code == 200 and r.json()["value"]["value"] == 93.0
    same = _put(client, keys["assessor"], "370100", "zhengfu.online", 93)
    assert same.json()["changed"] == 0  # nothing changed, nothing logged
    log = client.get(f"/grading/rounds/{ROUND}/audit", headers=_auth(keys["reviewer"])).json()
    sets = [e for e in log if e["action"] == "value.set"]
    assert [(e["old"] and e["old"]["value"], e["new"]["value"]) for e in sets] == [
        (None, 91.5),
        (91.5, 93.0),
    ]
    key_id = keys["assessor"].split("_")[1]
    assert all(e["target"] == "370100/zhengfu.online" and key_id in e["actor"] for e in sets)
    assert log[0]["action"] == "round.create" and log[0]["actor"].startswith("cli:")


def test_bad_values_are_refused_with_the_reason(setup) -> None:  # type: ignore[no-untyped-def]
    client, keys, engine = setup
    before = _state(engine)
    cases = {
        ("zhengfu.online", "plenty"): "takes a number",
        ("sheshi.cim", "maybe"): "takes yes or no",
        ("baozhang.plan", "superb"): "takes one of 优, 良, 中, 差",
        ("no.such", 1): "has no indicator 'no.such'",
        ("zhengfu.online", 1e20): "not a finite number within",
    }
    for (ind, value), message in cases.items():
        r = _put(client, keys["admin"], "370100", ind, value)
        assert r.status_code == 400 and message in r.json()["detail"], r.text
    r = client.put(
        f"/grading/rounds/{ROUND}/cities/370100/values/tese.pilot",
        json={"value": 1, "link": "javascript:alert(1)"},
        headers=_auth(keys["admin"]),
    )
    assert r.status_code == 400 and "not an http(s) address" in r.json()["detail"]
    r = client.post(
        f"/grading/rounds/{ROUND}/cities/370100/cim-indicators",
        json={"metric_crs": 4326},
        headers=_auth(keys["admin"]),
    )
    assert r.status_code == 400 and "not a projected CRS in metres" in r.json()["detail"]
    r = _put(client, keys["admin"], "999999", "tese.pilot", 1)
    assert r.status_code == 400 and "not in round" in r.json()["detail"]
    assert _state(engine) == before


def test_lifecycle_and_final_round_is_immutable(setup) -> None:  # type: ignore[no-untyped-def]
    client, keys, engine = setup
    for ind, value in (("zhengfu.online", 95), ("sheshi.cim", "是"), ("baozhang.plan", "良")):
        assert _put(client, keys["assessor"], "370100", ind, value).status_code == 200
    evidence = b"2026 annual report of online services\n"
    up = client.post(
        f"/grading/rounds/{ROUND}/evidence?filename=report.txt",
        content=evidence,
        headers=_auth(keys["assessor"]),
    )
    assert up.status_code == 201 and up.json()["sha256"] == hashlib.sha256(evidence).hexdigest()
    got = client.get(
        f"/grading/rounds/{ROUND}/evidence/{up.json()['sha256']}", headers=_auth(keys["reviewer"])
    )
    assert got.content == evidence
    assert got.headers["content-disposition"].startswith('attachment; filename="report.txt"')

    def move(to: str, role: str) -> Any:
        return client.post(
            f"/grading/rounds/{ROUND}/status",
            json={"status": to, "reason": f"to {to}"},
            headers=_auth(keys[role]),
        )

    assert move("final", "admin").status_code == 409  # a draft is not final in one step
    # this round holds three values: the committee records why the rest may be missing
    for city in ("370100", "370200"):
        exemptions.exempt(engine, access.cli_actor(), ROUND, city, None, "lifecycle test")
    assert move("submitted", "assessor").status_code == 403  # one city's assessor cannot
    assert move("submitted", "reviewer").json()["status"] == "submitted"
    late_policy = client.put(
        f"/grading/rounds/{ROUND}/policy",
        headers=_auth(keys["admin"]),
        json=built_in_policy("shandong-example").model_dump(mode="json"),
    )
    assert late_policy.status_code == 409 and "draft" in late_policy.json()["detail"]
    assert _put(client, keys["assessor"], "370100", "zhengfu.online", 99).status_code == 409
    assert move("draft", "reviewer").json()["status"] == "draft"  # sent back for changes
    assert _put(client, keys["assessor"], "370100", "zhengfu.online", 97).status_code == 200
    assert move("submitted", "reviewer").status_code == 200
    refused = move("reviewed", "reviewer")  # four eyes: who submitted does not review
    assert refused.status_code == 403 and "four eyes" in refused.json()["detail"]
    assert move("reviewed", "reviewer2").status_code == 200
    assert move("final", "reviewer").status_code == 403
    final = move("final", "admin").json()
    assert final["status"] == "final" and len(final["results_sha256"]) == 64

    frozen = client.get(f"/grading/rounds/{ROUND}/results").json()
    assert hashlib.sha256(canonical_json(frozen)).hexdigest() == final["results_sha256"]
    jinan = next(c for c in frozen["cities"] if c["code"] == "370100")
    online = next(i for i in jinan["indicators"] if i["id"] == "zhengfu.online")
    assert online["value"] == 97.0 and online["source"] == "test"

    before = _state(engine)
    policy = built_in_policy("shandong-example").model_copy(update={"budget": 1.0})
    refused = [
        _put(client, keys["admin"], "370100", "zhengfu.online", 50),
        client.put(
            f"/grading/rounds/{ROUND}/policy",
            json=policy.model_dump(mode="json"),
            headers=_auth(keys["admin"]),
        ),
        client.post(
            f"/grading/rounds/{ROUND}/evidence?filename=b.txt",
            content=b"late",
            headers=_auth(keys["admin"]),
        ),
        move("draft", "admin"),
        move("reviewed", "admin"),
    ]
    assert [r.status_code for r in refused] == [409] * 5, [r.text for r in refused]
    assert "final" in refused[0].json()["detail"]
    assert _state(engine) == before
    # recomputing a final round from its values, catalogue and policy gives the same bytes
    assert outcome.verify(engine, ROUND) == (True, final["results_sha256"], final["results_sha256"])
    assert outcome.results(engine, ROUND).to_dict() == frozen
    assert client.get(f"/grading/rounds/{ROUND}/results").json() == frozen


def test_audit_log_is_append_only(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, engine = setup
    for sql in (
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= 5


def test_keys_are_stored_hashed(setup) -> None:  # type: ignore[no-untyped-def]
    _, keys, engine = setup
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT row_to_json(k)::text FROM api_key k")).scalars().all()
        audit = conn.execute(text("SELECT row_to_json(a)::text FROM audit_log a")).scalars().all()
    for secret in keys.values():
        assert not any(secret in row or secret.split("_", 2)[2] in row for row in stored + audit)
        assert any(hashlib.sha256(secret.encode()).hexdigest() in row for row in stored)


def test_private_reads_need_a_key(setup, new_database: Callable[[], Engine]) -> None:  # type: ignore[no-untyped-def]
    _, keys, engine = setup
    client = TestClient(create_app(engine=engine, settings=ApiSettings(grading_private=True)))
    assert client.get("/grading/rounds").status_code == 401
    assert client.get(f"/grading/rounds/{ROUND}/results").status_code == 401
    ok = client.get("/grading/rounds", headers={"X-API-Key": keys["viewer"]})
    assert ok.status_code == 200 and ok.json()[0]["id"] == ROUND


def test_the_api_description_shows_the_grading_routes_and_keys(setup) -> None:  # type: ignore[no-untyped-def]
    from openapi_spec_validator import validate

    client, _, _ = setup
    doc = client.get("/api").json()
    validate(doc)
    assert set(doc["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    put = doc["paths"]["/grading/rounds/{round_id}/cities/{city}/values/{indicator}"]["put"]
    assert {"HTTPBearer": []} in put["security"]
    for path in (
        "/grading/rounds",
        "/grading/rounds/{round_id}/results",
        "/grading/rounds/{round_id}/what-if",
        "/grading/rounds/{round_id}/audit",
    ):
        assert path in doc["paths"], path


def test_uploads_have_limits_and_keep_their_names(setup, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, keys, engine = setup
    monkeypatch.setattr("grading.evidence.MAX_EVIDENCE_BYTES", 1000)
    before = _state(engine)
    big = client.post(
        f"/grading/rounds/{ROUND}/evidence?filename=big.bin",
        content=b"x" * 1001,
        headers=_auth(keys["assessor"]),
    )
    assert big.status_code == 413 and "limit of 1,000 bytes" in big.json()["detail"]
    for bad in ("a%00b.txt", "../x.txt", ""):
        r = client.post(
            f"/grading/rounds/{ROUND}/evidence?filename={bad}",
            content=b"x",
            headers=_auth(keys["assessor"]),
        )
        assert r.status_code == 400, bad
    assert _state(engine) == before
    up = client.post(
        f"/grading/rounds/{ROUND}/evidence?filename=佐证 材料.pdf",
        content=b"%PDF",
        headers={**_auth(keys["assessor"]), "Content-Type": "application/pdf"},
    )
    got = client.get(
        f"/grading/rounds/{ROUND}/evidence/{up.json()['sha256']}", headers=_auth(keys["reviewer"])
    )
    assert got.headers["content-disposition"] == (
        'attachment; filename="_____.pdf"; '
        "filename*=UTF-8''%E4%BD%90%E8%AF%81%20%E6%9D%90%E6%96%99.pdf"
    )
    assert got.headers["content-type"] == "application/pdf" and got.content == b"%PDF"
