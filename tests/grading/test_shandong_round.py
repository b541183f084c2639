"""A 16-city Shandong round (济南 370100 … 菏泽 371700) end to end: created, filled from a value
file (tests/grading/data), Jinan's model indicators computed from a generated city, scored,
ranked, allocated (and compared with another policy), finalised, and reported as PDF — once
through the command line and read back through the API, which must agree. The report's first
page is rendered to PNG by `pdftoppm` and its text read by `pdftotext`."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine

from api.app import create_app
from cim.settings import ApiSettings
from cli.main import main
from demo.city import generate_city
from demo.round import BUILT_UP, PLATFORM, VALUES
from grading import jobs
from grading.platform import FUNCTION_GROUPS
from grading.regions import SHANDONG
from ingest.pipeline import ingest_files

DATA = VALUES.parent  # the demo round's values and evidence
ROUND = "sd-2026"
OPEN = ApiSettings(grading_public_drafts=True)  # a transparent process: drafts readable by all


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = new_database()
    city = generate_city(
        tmp_path_factory.mktemp("jinan") / "jinan.city.json", buildings=400, seed=7
    )
    ingest_files(engine, [city.path], "370100", city_name_zh="济南市")
    return engine


@pytest.fixture(scope="module")
def cim(db: Engine) -> Iterator[Callable[..., Any]]:
    """Run `cim …` against the test database; fail the test on a non-zero exit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIM_DATABASE_URL", db.url.render_as_string(hide_password=False))

        def run(*args: str, ok: bool = True, who: str = "王委员") -> Any:
            result = CliRunner().invoke(main, ["grade", "--as", who, *args])
            if ok:
                assert result.exit_code == 0, (args, result.output)
            return result

        yield run


@pytest.fixture(scope="module")
def round_done(cim: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The round, run start to finish through the command line."""
    out = tmp_path_factory.mktemp("round")
    cim(
        "round",
        "create",
        ROUND,
        "--year",
        "2026",
        "--catalogue",
        "db37-3890.1-2020",
        "--policy",
        "shandong-example",
        "--cities",
        "shandong",
    )
    cim("template", ROUND, str(out / "template.xlsx"))
    imported = cim("values", "import", ROUND, str(VALUES))
    assert "280 values read (280 changed, 8 rows left empty), 1 evidence files stored" in (
        imported.output
    )
    # what the model indicators stand on: the committee's area, the platform's function groups
    refused = cim("compute-cim-indicators", ROUND, "--city", "370100", ok=False)
    assert refused.exit_code != 0 and "has none in round" in refused.output
    assert "cim grade area declare" in refused.output and "cim grade platform" in refused.output
    area = cim(
        "area",
        "declare",
        ROUND,
        str(BUILT_UP),
        "--city",
        "370100",
        "--kind",
        "built_up",
        "--name",
        "示例城区建成区",
        "--reason",
        "委员会提供的建成区边界",
    )
    assert "7.88 km²" in area.output and "EPSG:4548" in area.output
    for group in FUNCTION_GROUPS:
        cim("platform", "declare", ROUND, group, "--city", "370100", "--evidence", str(PLATFORM))
    computed = cim("compute-cim-indicators", ROUND, "--city", "370100")
    lines = computed.output.splitlines()
    assert sum(bool(re.match(r"[a-z]+\.\w+ ", line)) for line in lines) == 8  # 8 indicators
    assert "[1/7] camera_coverage" in computed.output  # its progress, step by step
    assert sum("over 示例城区建成区: 7.88 km²" in line for line in lines) == 3  # per area
    return out


def _fixture_rows() -> list[dict[str, str]]:
    with VALUES.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_template_lists_every_city_and_indicator(round_done: Path) -> None:
    from openpyxl import load_workbook

    sheet = load_workbook(round_done / "template.xlsx", read_only=True)["values"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("city_code", "city_name", "indicator_id")
    assert len(rows) - 1 == 16 * 18
    assert {r[0] for r in rows[1:]} == {c.code for c in SHANDONG}


def test_a_bad_spreadsheet_stores_nothing_and_names_every_row(  # type: ignore[no-untyped-def]
    round_done: Path, cim, db: Engine
) -> None:
    """Filled in Excel with four mistakes and one good change: one run reports all four (file,
    sheet, row, city, indicator, value, why), exits non-zero, and stores nothing at all."""
    from openpyxl import load_workbook

    book = load_workbook(round_done / "template.xlsx")
    sheet = book["values"]
    row_of = {(r[0].value, r[2].value): r[0].row for r in sheet.iter_rows(min_row=2)}
    bad = {
        ("370100", "zhengfu.online"): 150,  # 150 %
        ("370100", "baozhang.security"): -3,  # -3 incidents would dodge the veto
        ("370200", "huimin.travel"): "=90+1",  # a formula
        ("370300", "huimin.education"): 180,  # a score of 180 on a 100-point scale
    }
    for (city, ind), value in bad.items():
        sheet.cell(row=row_of[city, ind], column=7, value=value)
    sheet.cell(row=row_of["370400", "huimin.medical"], column=7, value=77)  # good, not stored
    path = round_done / "bad.xlsx"
    book.save(path)

    before = cim("values", "export", ROUND).output
    refused = cim("values", "import", ROUND, str(path), ok=False)
    assert refused.exit_code == 2
    assert f"{path}: 4 problems, nothing was stored" in refused.output
    for city, ind in bad:
        assert f"sheet values row {row_of[city, ind]}, city {city}, indicator {ind}" in (
            refused.output
        )
    assert "a formula (value '=90+1')" in refused.output
    assert cim("values", "export", ROUND).output == before

    # the same values over the API are refused too, each with its reason
    key = cim("keys", "create", "checker", "--role", "admin").output.strip().splitlines()[-1]
    client = TestClient(create_app(engine=db, settings=OPEN))
    put = client.put(
        f"/grading/rounds/{ROUND}/cities/370300/values/huimin.education",
        json={"value": 180, "source": "api"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert put.status_code == 400
    assert put.json()["errors"] == [
        "city 370300, indicator huimin.education: indicator huimin.education: 180 is "
        "impossible; it takes a number from 0 to 100 score"
    ]
    assert cim("values", "export", ROUND).output == before


def test_scores_come_from_the_fixture_and_the_model(round_done: Path, cim) -> None:  # type: ignore[no-untyped-def]
    scores = {c["code"]: c for c in json.loads(cim("score", ROUND, "--json").output)}
    assert set(scores) == {c.code for c in SHANDONG}
    # every value of the fixture is what was scored
    for row in _fixture_rows():
        if row["value"] == "":
            continue
        got = next(
            i for i in scores[row["city_code"]]["indicators"] if i["id"] == row["indicator_id"]
        )
        expect: Any = row["value"]
        if expect in ("是", "否"):
            expect = expect == "是"
        elif expect not in ("优", "良", "中", "差"):
            expect = float(expect)
        assert got["value"] == expect, row
        assert got["source"] == row["source"]
    # Jinan's model indicators carry their query as evidence
    jinan = {i["id"]: i for i in scores["370100"]["indicators"]}
    assert jinan["sheshi.lod2"]["value"] == 100.0  # the demo city is all LoD2
    assert jinan["sheshi.cim"]["value"] is True
    assert "ST_SquareGrid" in jinan["sheshi.3d_coverage"]["computed"]["query"]
    assert jinan["sheshi.5g"]["computed"]["parameters"]["g5_radius_m"] == 300.0
    # Zibo's online-services value carries its evidence file, stored under its hash
    zibo = {i["id"]: i for i in scores["370300"]["indicators"]}
    evidence = (DATA / "evidence/370300-zhengfu-online.txt").read_bytes()
    assert zibo["zhengfu.online"]["evidence_sha256"] == hashlib.sha256(evidence).hexdigest()
    # 菏泽 reported 6 major security incidents: the veto item leaves it without a star
    heze = scores["371700"]
    assert heze["stars"] == 0 and heze["vetoed"] == ["baozhang.security"]
    assert heze["total"] > 60  # it would have had stars otherwise


def test_ranking_and_allocation_follow_the_policy(round_done: Path, cim) -> None:  # type: ignore[no-untyped-def]
    ranked = json.loads(cim("rank", ROUND, "--json").output)
    assert [r["rank"] for r in ranked] == list(range(1, 17))
    keys = [(-r["stars"], -r["score"]) for r in ranked]
    assert keys == sorted(keys)  # more stars first, then the higher score
    alloc = json.loads(cim("allocate", ROUND, "--json").output)
    policy, cities = alloc["policy"], alloc["cities"]
    assert sum(c["amount"] for c in cities) == alloc["allocation"]["allocated"]
    assert alloc["allocation"]["allocated"] <= policy["budget"]
    for c in cities:
        assert c["amount"] <= policy["cap_per_city"]
        if c["stars"] < 3:
            assert c["amount"] == 0 and "below the 3 needed" in c["award_reason"]
        else:
            # no city rose a level (no previous stars in this round), and the budget suffices
            assert c["amount"] == policy["amounts"][str(c["stars"])], c
    assert any(c["stars"] >= 3 for c in cities) and any(c["stars"] < 3 for c in cities)


def test_what_if_compares_two_policies(round_done: Path, cim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "per-point.yaml"
    other.write_text(
        "id: per-point\ntitle: by score\nmin_stars: 4\ncap_per_city: 12000000\n"
        "budget: 20000000\nmethod: per_point\nper_point: 100000\n"
        "provenance: {status: provisional, source: what-if in a test}\n",
        encoding="utf-8",
    )
    assert "valid policy per-point" in cim("policy", "validate", str(other)).output
    cmp = json.loads(cim("allocate", ROUND, "--policy", str(other), "--json").output)
    assert (cmp["a"], cmp["policy"]) == ("current", "per-point")
    rows = {r["code"]: r for r in cmp["cities"]}
    assert len(rows) == 16
    for r in rows.values():
        assert r["amount_change"] == r["b"]["amount"] - r["a"]["amount"]
        if r["b"]["stars"] < 4:
            assert r["b"]["amount"] == 0
        else:
            assert r["b"]["amount"] <= min(100000 * r["b"]["score"], 12_000_000)
    assert sum(r["b"]["amount"] for r in rows.values()) <= 20_000_000
    # the what-if changed nothing
    assert json.loads(cim("allocate", ROUND, "--json").output)["policy"]["id"] == (
        "shandong-example"
    )


def test_the_api_agrees_and_the_final_report_renders(  # type: ignore[no-untyped-def]
    round_done: Path, cim, db: Engine, tmp_path: Path
) -> None:
    client = TestClient(create_app(engine=db, settings=OPEN))
    ranked_cli = json.loads(cim("rank", ROUND, "--json").output)
    ranked_api = client.get(f"/grading/rounds/{ROUND}/ranking").json()["cities"]
    assert [(r["code"], r["stars"], r["score"]) for r in ranked_api] == [
        (r["code"], r["stars"], r["score"]) for r in ranked_cli
    ]
    one = client.get(f"/grading/rounds/{ROUND}/cities/370300").json()
    assert one["code"] == "370300" and len(one["indicators"]) == 18
    assert all(i["reason"] for i in one["indicators"])
    assert client.get(f"/grading/rounds/{ROUND}/cities/370300/radar.svg").text.startswith("<svg")

    # four eyes: who submits does not review, who reviews does not make it final
    for to, who in (("submitted", "李评估"), ("reviewed", "张复核"), ("final", "王主任")):
        moved = cim("round", "status", ROUND, to, "--reason", f"{to} by the committee", who=who)
        assert f"is now {to}" in moved.output
    assert "recomputed results are identical" in cim("round", "verify", ROUND).output
    refused = cim("values", "import", ROUND, str(VALUES), ok=False)
    assert refused.exit_code == 2 and "final" in refused.output
    audit = json.loads(cim("audit", ROUND, "--json").output)
    assert [e["action"] for e in audit].count("value.set") == 280 + 8
    assert [e["new"] for e in audit if e["action"] == "round.status"][-1]["status"] == "final"

    pdf = tmp_path / "report.pdf"
    cim("report", ROUND, str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF-")
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "50",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(tmp_path / "page1"),
        ],
        check=True,
    )
    page = Image.open(tmp_path / "page1.png").convert("L")
    assert page.width > 300 and page.height > 400
    dark = sum(page.histogram()[:128])
    assert dark > 0.005 * page.width * page.height  # text and tables, not a blank page
    text = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "新型智慧城市星级评价报告" in text
    first = ranked_api[0]
    assert first["name_zh"] in text and "草稿" not in text  # final: no draft banner
    api_pdf = client.get(f"/grading/rounds/{ROUND}/report.pdf?lang=en")
    assert api_pdf.status_code == 200 and api_pdf.content.startswith(b"%PDF-")
    html = client.get(f"/grading/rounds/{ROUND}/report.html?lang=en").text
    assert "Smart-city star rating report" in html and "Qingdao" in html


def test_the_same_round_through_the_api_alone(round_done: Path, cim, db: Engine) -> None:  # type: ignore[no-untyped-def]
    """Created, filled and computed with API keys; it scores exactly as the CLI round did."""
    admin = cim("keys", "create", "committee", "--role", "admin").output.strip().splitlines()[-1]
    assessor = cim(  # for the round this test makes through the API
        "keys",
        "create",
        "jinan",
        "--role",
        "assessor",
        "--city",
        "370100",
        "--round",
        "sd-2026-api",
    )
    assessor_key = assessor.output.strip().splitlines()[-1]
    client = TestClient(create_app(engine=db, settings=OPEN))
    auth = {"Authorization": f"Bearer {admin}"}
    made = client.post(
        "/grading/rounds",
        headers=auth,
        json={
            "id": "sd-2026-api",
            "year": 2026,
            "catalogue": "db37-3890.1-2020",
            "policy": "shandong-example",
            "cities": "shandong",
        },
    )
    assert made.status_code == 201, made.text
    evidence = (DATA / "evidence/370300-zhengfu-online.txt").read_bytes()
    up = client.post(
        "/grading/rounds/sd-2026-api/evidence?filename=370300-zhengfu-online.txt",
        content=evidence,
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert up.status_code == 201
    # a value file naming a local path is refused (the server cannot read the caller's disk)
    refused = client.post(
        "/grading/rounds/sd-2026-api/imports?filename=values.csv",
        content=VALUES.read_bytes(),
        headers=auth,
    )
    assert refused.status_code == 400 and "upload" in refused.json()["detail"]
    assert "values.csv row" in refused.json()["detail"]
    body = VALUES.read_text(encoding="utf-8-sig").replace(
        "evidence/370300-zhengfu-online.txt", f"sha256:{up.json()['sha256']}"
    )
    imported = client.post(
        "/grading/rounds/sd-2026-api/imports?filename=values.csv",
        content=body.encode("utf-8"),
        headers=auth,
    )
    assert imported.json() == {"read": 280, "changed": 280, "empty": 8}, imported.text
    jinan = "/grading/rounds/sd-2026-api/cities/370100"
    declared = client.put(  # the committee's area file is the request body
        f"{jinan}/area?filename={BUILT_UP.name}&kind=built_up&name=示例城区建成区"
        "&reason=委员会提供的建成区边界",
        content=BUILT_UP.read_bytes(),
        headers=auth,
    )
    assert declared.status_code == 200 and declared.json()["area_km2"] == 7.882, declared.text
    proof = client.post(
        f"/grading/rounds/sd-2026-api/evidence?filename={PLATFORM.name}",
        content=PLATFORM.read_bytes(),
        headers={"X-API-Key": assessor_key, "Content-Type": "text/plain"},
    )
    for group in FUNCTION_GROUPS:
        put = client.put(
            f"{jinan}/platform-functions/{group}",
            json={"evidence_sha256": proof.json()["sha256"], "note": "验收记录"},
            headers={"X-API-Key": assessor_key},
        )
        assert put.status_code == 200, put.text
    computed = client.post(
        "/grading/rounds/sd-2026-api/cities/370100/cim-indicators",
        headers={"X-API-Key": assessor_key},
    )
    assert computed.status_code == 202, computed.text
    job = computed.json()
    assert computed.headers["location"] == f"/grading/rounds/sd-2026-api/jobs/{job['id']}"
    done = jobs.wait(db, "sd-2026-api", job["id"])
    assert done.status == "done" and len(done.result or []) == 8, done.error
    polled = client.get(computed.headers["location"]).json()
    assert polled["status"] == "done" and polled["progress"]["of"] == 7
    via_api = client.get("/grading/rounds/sd-2026-api/results").json()
    via_cli = client.get(f"/grading/rounds/{ROUND}/results").json()

    def outcome(res: dict[str, Any]) -> list[Any]:
        return [
            (
                c["code"],
                c["rank"],
                c["stars"],
                c["score"],
                c["amount"],
                [(i["id"], i["value"], i["points"]) for i in c["indicators"]],
            )
            for c in res["cities"]
        ]

    assert outcome(via_api) == outcome(via_cli)


def test_what_if_with_a_changed_weight(round_done: Path, cim, db: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Education 10 -> 12 and travel 10 -> 8 points (the area keeps its 30): each city's score
    moves by 2 x (education level - travel level) / 5."""
    from grading.catalogue import BUILT_IN

    text = (BUILT_IN / "db37-3890.1-2020.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "name_en: Smart education, area: huimin, weight: 10,",
        "name_en: Smart education, area: huimin, weight: 12,",
    )
    text = text.replace(
        "name_en: Smart travel, area: huimin, weight: 10,",
        "name_en: Smart travel, area: huimin, weight: 8,",
    )
    changed = tmp_path / "weights.yaml"
    changed.write_text(text, encoding="utf-8")
    assert "valid catalogue" in cim("catalogue", "validate", str(changed)).output
    before = {c["code"]: c for c in json.loads(cim("score", ROUND, "--json").output)}
    cmp = json.loads(cim("allocate", ROUND, "--catalogue", str(changed), "--json").output)
    assert cmp["catalogue"] == "db37-3890.1-2020" and cmp["policy"] == "shandong-example"
    moved = 0
    for row in cmp["cities"]:
        levels = {i["id"]: i["level"] for i in before[row["code"]]["indicators"]}
        delta = 2 * (levels["huimin.education"] - levels["huimin.travel"]) / 5
        assert row["b"]["score"] == pytest.approx(row["a"]["score"] + delta, abs=1e-6)
        moved += delta != 0
    assert moved > 0  # the fixture has cities whose education and travel levels differ
    client = TestClient(create_app(engine=db, settings=OPEN))
    api = client.post(
        f"/grading/rounds/{ROUND}/what-if", json={"catalogue": yaml.safe_load(text)}
    ).json()
    assert [(r["code"], r["b"]["score"]) for r in api["cities"]] == [
        (r["code"], r["b"]["score"]) for r in cmp["cities"]
    ]
    assert client.post(f"/grading/rounds/{ROUND}/what-if", json={}).status_code == 400
