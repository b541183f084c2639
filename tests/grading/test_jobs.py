"""A city's CIM indicators are computed as a job (issue 13, point 7): checked at once, run in
the background with its progress, one per city at a time, failures recorded; another city's
model only when an admin names it, and then on the record."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from cim.errors import Conflict, Forbidden
from cim.settings import ApiSettings
from demo.city import generate_city
from grading import access, jobs, values
from ingest.pipeline import ingest_files
from tests.grading.one_city import declare_area_and_platform, one_city_round

ROUND = "job-2026"
CITY = "370100"
ADMIN = access.cli_actor("王委员")


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = new_database()
    city = generate_city(tmp_path_factory.mktemp("j") / "c.city.json", buildings=120, seed=9)
    ingest_files(engine, [city.path], CITY)
    ingest_files(engine, [city.path], "370200")  # another city's model, for the last test
    one_city_round(engine, ROUND, CITY, ADMIN)
    declare_area_and_platform(engine, ROUND, CITY, ADMIN)
    return engine


def test_one_computation_per_city_at_a_time(db: Engine) -> None:
    seen: list[tuple[str, int, int]] = []

    def step(name: str, done: int, of: int) -> None:
        seen.append((name, done, of))
        if len(seen) == 1:  # while this one runs, a second is refused
            with pytest.raises(Conflict, match="are being computed"):
                jobs.start(db, ADMIN, ROUND, CITY, only=("sheshi.lod2",))

    job = jobs.start(db, ADMIN, ROUND, CITY, background=False, progress=step)
    assert job.status == "done" and job.error is None and len(job.result or []) == 8
    assert [s[0] for s in seen[:7]] == [
        "camera_coverage",
        "g5_building_coverage",
        "g5_density",
        "smart_light_ratio",
        "iot_density",
        "model_coverage",
        "lod2_share",
    ]
    assert job.progress == {"step": "entering the values", "done": 7, "of": 7}
    assert jobs.running_job(db, ROUND, CITY) is None


def test_a_job_whose_process_died_does_not_block_the_city(db: Engine) -> None:
    with db.begin() as conn:  # as a killed process leaves it: running, silent for an hour
        conn.execute(
            text(
                "INSERT INTO grading_job (id, round_id, city_code, request, requested_by, "
                "heartbeat_at) VALUES ('dead', :r, :c, '{}', 'x', now() - interval '1 hour')"
            ),
            {"r": ROUND, "c": CITY},
        )
    assert jobs.get_job(db, ROUND, "dead").status == "failed"  # seen as failed at once
    job = jobs.start(db, ADMIN, ROUND, CITY, only=("sheshi.lod2",), background=False)
    assert job.status == "done"
    dead = jobs.get_job(db, ROUND, "dead")
    assert dead.status == "failed" and "no sign of life since" in (dead.error or "")


def test_over_the_api_a_job_and_its_outcome(db: Engine) -> None:
    _, jinan = access.create_key(db, ADMIN, "jinan", "assessor", [CITY], [ROUND])
    _, admin = access.create_key(db, ADMIN, "committee", "admin")
    client = TestClient(create_app(engine=db, settings=ApiSettings(grading_public_drafts=True)))
    url = f"/grading/rounds/{ROUND}/cities/{CITY}/cim-indicators"
    started = client.post(url, headers={"X-API-Key": jinan})
    assert started.status_code == 202 and started.json()["status"] in ("running", "done")
    done = jobs.wait(db, ROUND, started.json()["id"])
    assert done.status == "done" and done.requested_by.endswith("(jinan)")
    polled = client.get(started.headers["location"]).json()
    assert polled["status"] == "done" and {r["indicator"] for r in polled["result"]} >= {
        "sheshi.3d_coverage",
        "sheshi.cim",
    }
    # another city's model: refused to the city's own assessor, on the record for an admin
    other = client.post(f"{url}?model_city=370200", headers={"X-API-Key": jinan})
    assert other.status_code == 403
    named = client.post(f"{url}?model_city=370200&only=sheshi.lod2", headers={"X-API-Key": admin})
    assert named.status_code == 202, named.text
    assert jobs.wait(db, ROUND, named.json()["id"]).request["model_city"] == "370200"
    entry = values.entered(db, ROUND)[CITY]["sheshi.lod2"]
    kept = entry if entry.get("computed") else entry["alternative"]
    assert "CIM model of city 370200 (named by key:" in kept["source"]
    # a model that is not there: the job fails, saying why
    missing = client.post(f"{url}?model_city=999999&only=sheshi.lod2", headers={"X-API-Key": admin})
    failed = jobs.wait(db, ROUND, missing.json()["id"])
    assert failed.status == "failed" and "no city '999999'" in (failed.error or "")
    assert client.get(f"/grading/rounds/{ROUND}/jobs/nope").status_code == 404


def test_checked_before_it_starts(db: Engine) -> None:
    reviewer = access.Actor("key:r", "reviewer")
    with pytest.raises(Forbidden):
        jobs.start(db, reviewer, ROUND, CITY)
    stranger = access.Actor("key:qd", "assessor", ("370200",), (ROUND,))
    with pytest.raises(Forbidden):
        jobs.start(db, stranger, ROUND, CITY)
