"""Hostile requests (issue 13, points 1, 2 and 11): no single request stalls the service, and no
limit can be stepped around. Each test shows on a small input that a cost no longer grows with
what the caller sends: a write's body is refused before it is read, a body over its route's limit
too, a catalogue's checks grow with areas plus indicators (not their product), a what-if's work
is done in a worker process (never on the event loop), heavy requests wait for one of a few
slots, and a report is rendered once for the same results. Speed itself is shown by the
benchmarks (`bench/fuzz_api.py --hostile`, `bench/load.py --hostile`), not timed here."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import httpx
import psutil
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import grading.catalogue
import grading.scoring
from api.app import create_app
from api.limits import (
    JSON_BODY,
    VALUE_BODY,
    WHAT_IF_BODY,
    WORKER_NICENESS,
    HeavyGate,
    body_limit,
)
from cim.errors import InvalidInput
from cim.settings import ApiSettings
from grading import access, rounds, values
from grading.awards import AwardPolicy, built_in_policy
from grading.catalogue import MAX_AREAS, MAX_INDICATORS, Catalogue
from grading.evidence import MAX_EVIDENCE_BYTES
from ingest.pipeline import ingest_files
from tests.conftest import shared
from tests.grading.one_city import one_city_round

DELFT = shared("cityjson/delft_mixed_objects_v2.0/delft.city.json")
ROUND = "hostile-1"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
MB = 1_000_000


@pytest.fixture(scope="module")
def engine(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    one_city_round(engine, ROUND)
    return engine


@pytest.fixture(scope="module")
def keys(engine: Engine) -> dict[str, str]:
    cli = access.cli_actor()
    return {
        "admin": access.create_key(engine, cli, "admin", "admin")[1],
        "assessor": access.create_key(engine, cli, "a", "assessor", ["370100"], [ROUND])[1],
        "viewer": access.create_key(engine, cli, "viewer", "viewer")[1],
    }


def _sent(
    app: FastAPI,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    chunks: int = 8,
    declared: bool = False,
) -> tuple[int, int]:
    """(status, bytes of the body the app took) of a request whose body is `chunks` megabytes of
    JSON-ish bytes, handed over only as the app asks for them (`declared`: with Content-Length,
    else chunked)."""
    taken = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal taken
        for _ in range(chunks):
            taken += MB
            yield b" " * MB

    async def send() -> int:
        transport = httpx.ASGITransport(app=app, client=("10.13.0.1", 4000))
        sent = {"content-type": "application/json", **(headers or {})}
        if declared:
            sent["content-length"] = str(chunks * MB)
        async with httpx.AsyncClient(transport=transport, base_url="http://cim") as client:
            r = await client.request(method, path, content=body(), headers=sent)
            if r.status_code >= 400:
                assert r.headers["content-type"] == "application/problem+json", r.text
            return r.status_code

    return asyncio.run(send()), taken


def _write_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, path with plausible parameters, route) of every writing route of the app."""
    out = []
    for context in iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, APIRoute):
            for method in sorted((context.methods or set()) & WRITES):
                path = context.path.replace("{round_id}", ROUND).replace("{city}", "370100")
                path = path.replace("{indicator}", "huimin.education").replace("{group}", "x")
                out.append((method, path, route))
    return out


# ---------------------------------------------------------------- point 2: bodies, keys first
def test_writes_are_refused_before_their_body_is_read(engine: Engine, keys: dict[str, str]) -> None:
    """Eight megabytes to every writing route: without a key, with a bad one or with a viewer's,
    the answer (401, 403) comes before a byte of the body is taken."""
    app = create_app(engine=engine, settings=ApiSettings(auth_failures=1_000))
    routes = [
        (method, path)
        for method, path, route in _write_routes(app)
        if not (route.openapi_extra or {}).get("x-read-only")  # the what-if: tested below
        and not (route.openapi_extra or {}).get("x-twin")  # tests/twin/test_twin_writes.py
    ]
    assert len(routes) == 13  # the enumeration sees the app's real write routes
    callers = {
        401: [{}, {"X-API-Key": "cim_k_00000000_guess"}, {"Authorization": "Bearer "}],
        403: [{"X-API-Key": keys["viewer"]}],
    }
    for method, path in routes:
        for status, headers in ((s, h) for s, hs in callers.items() for h in hs):
            for declared in (False, True):
                got, taken = _sent(app, method, path, headers, declared=declared)
                # a declared size over the route's limit is refused before the key is looked up
                over = declared and 8 * MB > body_limit(method, path)
                assert (got, taken) == (413 if over else status, 0), (method, path, headers)


def test_a_bad_key_is_counted_once_and_the_refusal_audited(
    engine: Engine, keys: dict[str, str]
) -> None:
    """A refusal found before the body is the route's own answer: counted once per request
    against the client's address, and kept in the audit log like any other."""
    app = create_app(engine=engine, settings=ApiSettings(auth_failures=2))
    bad = {"X-API-Key": "cim_k_00000000_guess"}
    path = f"/grading/rounds/{ROUND}/policy"
    assert [_sent(app, "PUT", path, bad, chunks=1)[0] for _ in range(3)] == [401, 401, 429]
    log = access.audit_log(engine, ROUND)
    refused = [e for e in log if e["action"] == "refused" and path in str(e)]
    assert len(refused) >= 2


def test_json_bodies_have_limits_that_fit_their_routes(
    engine: Engine, keys: dict[str, str]
) -> None:
    """Uploads (files sent as the body) may be 50 MB; every JSON body a megabyte at most, a
    value 128 KiB, a what-if 256 KiB. With a good key, an endless body is cut at its limit."""
    app = create_app(engine=engine)
    for method, path, route in _write_routes(app):
        content = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
        limit = body_limit(method, path)
        if "application/octet-stream" in content:
            assert limit >= MAX_EVIDENCE_BYTES, (method, path)
        else:
            assert limit <= JSON_BODY, (method, path)
    assert body_limit("POST", f"/grading/rounds/{ROUND}/what-if") == WHAT_IF_BODY == 256 * 1024
    value = f"/grading/rounds/{ROUND}/cities/370100/values/huimin.education"
    assert body_limit("PUT", value) == VALUE_BODY == 128 * 1024
    admin = {"X-API-Key": keys["admin"]}
    got, taken = _sent(app, "PUT", f"/grading/rounds/{ROUND}/policy", admin, chunks=50)
    assert got == 413 and taken <= JSON_BODY + MB  # cut after the first megabyte past 1 MB
    got, taken = _sent(app, "PUT", value, {"X-API-Key": keys["assessor"]}, chunks=50)
    assert got == 413 and taken <= MB
    # the limit leaves room for the largest value a route takes, even with every character
    # \\u-escaped (as Python's json.dumps writes it)
    body = {"value": 50, "source": "年报" * 1000, "note": "说明" * 5000, "reason": "更正" * 1000}
    content = json.dumps(body).encode()
    assert len(content) > 64 * 1024
    assessor = {"X-API-Key": keys["assessor"], "Content-Type": "application/json"}
    r = TestClient(app).put(value, content=content, headers=assessor)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- point 1: the what-if
def _catalogue(areas: int, indicators: int) -> dict[str, Any]:
    """A valid catalogue of `areas` areas sharing `indicators` indicators."""
    weight = 100 / areas
    per = indicators // areas
    source = {"status": "provisional", "source": "test"}
    return {
        "id": "wide",
        "version": "1",
        "standard": "test",
        "title_zh": "测试",
        "title_en": "test",
        "areas": [
            {"id": f"a{a}", "name_zh": "领域", "name_en": "area", "weight": weight}
            | {"provenance": source}
            for a in range(areas)
        ],
        "indicators": [
            {
                "id": f"a{a}.i{i}",
                "name_zh": "指标",
                "name_en": "indicator",
                "area": f"a{a}",
                "weight": weight / per,
                "unit": "%",
                "range": {"min": 0, "max": 100},
                "scoring": {"method": "thresholds", "thresholds": [10, 20, 30, 40, 50]},
                "computed_from_cim": "lod2_share" if i == 0 else None,
                "provenance": source,
            }
            for a in range(areas)
            for i in range(per)
        ],
        "stars": {"thresholds": {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}, "provenance": source},
    }


def _lines_run(check: Callable[[], object], module: Any) -> int:
    """How many lines of `module` run during `check()` (a count that shows how the work grows,
    unlike a time)."""
    count = 0
    target = module.__file__

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += event == "line"
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename == target else None

    sys.settrace(calls)
    try:
        check()
    finally:
        sys.settrace(None)
    return count


def test_a_catalogue_is_checked_in_linear_time() -> None:
    """Each area more costs a few lines of checking, not one per indicator (the sum of each
    area's indicator weights was once a walk over every indicator for every area)."""
    few = _catalogue(5, 500)
    many = _catalogue(50, 500)
    lines_few = _lines_run(lambda: Catalogue.model_validate(few), grading.catalogue)
    lines_many = _lines_run(lambda: Catalogue.model_validate(many), grading.catalogue)
    assert (lines_many - lines_few) / 45 < 25  # was 506: one per indicator


def test_a_city_is_scored_in_linear_time() -> None:
    """Scoring a city costs lines in proportion to areas plus indicators: each area's points
    were once a walk over every indicator for every area."""
    few = Catalogue.model_validate(_catalogue(5, 500))
    many = Catalogue.model_validate(_catalogue(50, 500))
    lines_few = _lines_run(lambda: grading.scoring.score_city(few, {}), grading.scoring)
    lines_many = _lines_run(lambda: grading.scoring.score_city(many, {}), grading.scoring)
    assert (lines_many - lines_few) / 45 < 25  # was over 500: one per indicator


def test_a_round_is_bounded_in_cities_and_their_texts(engine: Engine, keys: dict[str, str]) -> None:
    """A round holds at most MAX_CITIES cities, each with bounded names and a finite previous
    total; the API refuses more in its schema, the core wherever a round comes from."""
    app = create_app(engine=engine)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    city = {"code": "370100", "name_zh": "济南市", "name_en": "Jinan"}
    spec = {"id": "big-1", "year": 2026, "catalogue": "db37-3890.1-2020"}
    spec["policy"] = "shandong-example"
    many = [{**city, "code": f"{n:06d}"} for n in range(rounds.MAX_CITIES + 1)]
    with TestClient(app) as http:
        for cities in (many, [{**city, "name_en": "x" * 3000}], [{**city, "name_zh": ""}]):
            r = http.post("/grading/rounds", json={**spec, "cities": cities}, headers=admin)
            assert r.status_code == 400, r.text
        assert http.get("/grading/rounds/big-1", headers=admin).status_code == 404
    cli = access.cli_actor()
    cat, pol = grading.catalogue.built_in("db37-3890.1-2020"), built_in_policy("shandong-example")
    entries = [rounds.CityEntry(f"{n:06d}", "市", "City") for n in range(rounds.MAX_CITIES + 1)]
    with pytest.raises(InvalidInput, match=f"at most {rounds.MAX_CITIES}"):
        rounds.create_round(engine, cli, "big-2", "t", 2026, cat, pol, entries)
    with pytest.raises(InvalidInput, match="previous_total inf"):
        bad = [rounds.CityEntry("370100", "济南市", "Jinan", 3, float("inf"))]
        rounds.create_round(engine, cli, "big-3", "t", 2026, cat, pol, bad)
    with pytest.raises(InvalidInput, match="name_en must have 1 to 200"):
        bad = [rounds.CityEntry("370100", "济南市", "J" * 201)]
        rounds.create_round(engine, cli, "big-4", "t", 2026, cat, pol, bad)


def test_catalogues_and_policies_are_bounded() -> None:
    """Everywhere a catalogue or policy comes from (file, API, what-if), its counts and texts
    are bounded, the bounds are in the published schema, and a refusal says which one."""
    Catalogue.model_validate(_catalogue(MAX_AREAS, MAX_INDICATORS))  # the bounds themselves
    for areas, indicators, word in ((MAX_AREAS + 1, 102, "areas"), (2, 2000, "indicators")):
        with pytest.raises(ValueError, match=f"at most .* {word}; this one has"):
            Catalogue.model_validate(_catalogue(areas, indicators))
    long = _catalogue(2, 4)
    long["indicators"][0]["provenance"] = {"status": "published", "source": "x" * 5000}
    with pytest.raises(ValueError, match="at most 2000 characters"):
        Catalogue.model_validate(long)
    levels = _catalogue(2, 4)
    grades = {f"g{n}": 1 for n in range(99)}
    levels["indicators"][1]["scoring"] = {"method": "levels", "levels": grades}
    with pytest.raises(ValueError, match="at most 20 items"):
        Catalogue.model_validate(levels)
    schema = Catalogue.model_json_schema()
    assert schema["properties"]["indicators"]["maxItems"] == MAX_INDICATORS
    assert schema["properties"]["areas"]["maxItems"] == MAX_AREAS
    policy = built_in_policy("shandong-example").model_dump()
    with pytest.raises(ValueError, match="at most 5 items"):
        AwardPolicy.model_validate({**policy, "amounts": {n: 1.0 for n in range(1, 1000)}})
    assert AwardPolicy.model_json_schema()["properties"]["amounts"]["maxProperties"] == 5


def test_what_ifs_are_bounded_checked_off_the_event_loop_and_private_with_drafts(
    engine: Engine, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"/grading/rounds/{ROUND}/what-if"
    private = create_app(engine=engine)
    # anonymous, on a draft that is not public: refused before the body is read
    assert _sent(private, "POST", path) == (401, 0)
    assert _sent(private, "POST", path, {"X-API-Key": "cim_k_00000000_guess"}) == (401, 0)
    # a reader with a key may, within the what-if's limit
    viewer = {"X-API-Key": keys["viewer"]}
    got, taken = _sent(private, "POST", path, viewer, chunks=20)
    assert got == 413 and taken <= WHAT_IF_BODY + MB
    # with public drafts anyone may, with the same limit; too many indicators are refused
    public = TestClient(create_app(engine=engine, settings=ApiSettings(grading_public_drafts=True)))
    wide = public.post(path, json={"catalogue": _catalogue(2, 600)})
    assert wide.status_code == 400
    assert "at most 500 indicators; this one has 600" in wide.json()["detail"]
    big = public.post(path, json={"catalogue": _catalogue(50, 5000)})
    assert big.status_code == 413 and "262,144 bytes" in big.json()["detail"]

    # its work (parsing, checks and scoring) is handed to a heavy worker process, from a
    # worker thread: none of it runs on the event loop, and the body goes as the bytes it came as
    handed: list[tuple[str, bool, type]] = []
    run = HeavyGate.run

    def watched(gate: HeavyGate, work: Callable[..., Any], *args: Any) -> Any:
        handed.append((work.__name__, _on_loop(), type(args[-1])))
        return run(gate, work, *args)

    monkeypatch.setattr(HeavyGate, "run", watched)
    ok = public.post(path, json={"catalogue": _catalogue(5, 50)})
    assert ok.status_code == 200, ok.text
    assert ok.json()["b"]["catalogue"] == "wide"
    assert handed == [("what_if_work", False, bytes)]
    # the schema FastAPI no longer checks is the route's to check, with the same answers
    assert public.post(path, json={}).status_code == 400
    json_type = {"content-type": "application/json"}
    broken = public.post(path, content=b'{"catalogue": ', headers=json_type)
    assert broken.status_code == 400 and "not JSON" in broken.json()["detail"]
    assert public.post(path, json=[1]).status_code == 400
    bad = public.post(path, json={"policy": {"id": "x"}})
    assert bad.status_code == 400 and "policy.title" in bad.json()["detail"]


# ---------------------------------------------------------------- point 11: heavy reads
def test_heavy_requests_wait_for_one_of_a_few_slots(engine: Engine, keys: dict[str, str]) -> None:
    """With every heavy slot taken, a large feature page, a report render and a what-if are
    answered 503 with Retry-After (after waiting up to heavy_wait_s), while small pages and
    /health answer as usual; once a slot is free they are served."""
    settings = ApiSettings(heavy_requests=1, heavy_wait_s=0, grading_public_drafts=True)
    app = create_app(engine=engine, settings=settings)
    client = TestClient(app)
    policy = {"policy": built_in_policy("shandong-example").model_dump(mode="json")}
    heavy = [
        ("GET", "/collections/delft/items?limit=2000", None),
        ("GET", f"/grading/rounds/{ROUND}/report.html", None),
        ("POST", f"/grading/rounds/{ROUND}/what-if", policy),
    ]
    gate: HeavyGate = app.state.heavy
    asyncio.run(gate.enter())  # the one slot, taken
    try:
        for method, path, body in heavy:
            r = client.request(method, path, json=body)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert int(r.headers["Retry-After"]) >= 1
        assert client.get("/collections/delft/items?limit=10").status_code == 200
        assert client.get("/health").status_code == 200
    finally:
        gate.leave()
    for method, path, body in heavy:
        assert client.request(method, path, json=body).status_code == 200, path
    assert gate._busy == 0  # every slot given back, after each response was sent


def test_the_waiting_line_is_short() -> None:
    gate = HeavyGate(slots=1, wait=30)
    refused = []

    async def main() -> None:
        await gate.enter()  # the one slot
        waiting = [asyncio.create_task(gate.enter()) for _ in range(gate.max_waiting)]
        await asyncio.sleep(0.05)
        try:
            await gate.enter()  # one more than may wait: refused at once, not after 30 s
        except Exception as exc:  # noqa: BLE001
            refused.append(exc)
        for _ in waiting:
            gate.leave()  # the slot passes to one of those waiting
            while gate._busy != 1:
                await asyncio.sleep(gate.POLL)
        await asyncio.gather(*waiting)
        gate.leave()

    asyncio.run(main())
    assert [getattr(e, "status_code", None) for e in refused] == [503]
    assert gate._busy == 0 and gate._waiting == 0


def test_a_report_is_rendered_once_for_the_same_results(
    engine: Engine, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[str] = []

    def render_pdf(results: Any, info: Any, lang: str, cmp: Any) -> bytes:
        rendered.append(lang)
        return b"%PDF-1.7 " + results.sha256().encode()

    monkeypatch.setattr("api.grading.render_pdf", render_pdf)
    # here, not in a worker process: the renders are counted in this one
    monkeypatch.setattr(HeavyGate, "run", lambda gate, work, *args: work(*args))
    client = TestClient(create_app(engine=engine))
    reader = {"X-API-Key": keys["viewer"]}
    url = f"/grading/rounds/{ROUND}/report.pdf"
    first = [client.get(url, headers=reader).content for _ in range(3)]
    assert len(set(first)) == 1 and rendered == ["zh"]
    assert client.get(f"{url}?lang=en", headers=reader).status_code == 200
    assert rendered == ["zh", "en"]
    # a draft's results change with its values: the report with them
    entry = values.ValueEntry(city="370100", indicator="huimin.education", value=77.0)
    values.set_values(engine, access.cli_actor(), ROUND, [entry])
    again = client.get(url, headers=reader).content
    assert again != first[0] and rendered == ["zh", "en", "zh"]
    assert client.get(url, headers=reader).content == again and len(rendered) == 3


def test_heavy_work_is_done_in_worker_processes() -> None:
    """A large page's objects, a PDF layout's garbage, a what-if's scoring: made, freed and
    collected in this process, they would hold its interpreter lock for tenths of a second at a
    time, and every request (/health too) would wait; so they are in worker processes (as
    many as slots, kept for the next tasks), and what they raise is raised here."""
    gate = HeavyGate(slots=1, wait=0)
    try:
        worker = gate.run(os.getpid)
        assert worker != os.getpid()
        assert gate.run(os.getpid) == worker
        assert gate.run(os.nice, 0) >= os.nice(0) + WORKER_NICENESS  # it yields the CPUs
        with pytest.raises(ValueError, match="invalid literal"):
            gate.run(int, "not a number")
    finally:
        gate.close()


def _on_loop() -> bool:
    """Whether an event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def test_a_serving_app_freezes_what_it_is_made_of_and_stops_its_workers(engine: Engine) -> None:
    """Each full collection scanned the ~135,000 objects the app is made of (modules, routes),
    holding the interpreter's lock ~85 ms: a server's app freezes them when it starts. When it
    stops, its heavy worker processes stop too."""
    gc.unfreeze()
    app = create_app(engine=engine)
    try:
        with TestClient(app):  # runs the app's lifespan, as a server does
            assert gc.get_freeze_count() > 10_000
            worker = psutil.Process(app.state.heavy.run(os.getpid))
        assert worker.wait(timeout=30) is not None or not worker.is_running()
    finally:
        gc.unfreeze()  # the rest of the tests' objects stay collectable
