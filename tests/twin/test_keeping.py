"""Observations kept well: monthly partitions made ahead and on demand, retention by whole
partitions with the latest values brought up to date, the latest value of each Datastream kept
as batches arrive (out of order too), and the twin in `cim db dump` / `cim db restore`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import Engine, text

from cim.db import backup
from cli.main import main
from tests.twin.conftest import thing_body
from twin.entities import parse_path
from twin.observations import existing_months, make_ahead, retain
from twin.store import Writer, create, create_observations

MANAGER = Writer("test", "manager")
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def a_datastream(engine: Engine) -> int:
    made = create(engine, parse_path("Things"), thing_body(), MANAGER)
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM twin_datastream WHERE thing_id = :t"), {"t": made.id}
            ).scalar_one()
        )


def latest(engine: Engine, ds: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT result_number, phenomenon_start, first_time, last_time FROM twin_latest "
                "WHERE datastream_id = :d"
            ),
            {"d": ds},
        ).one_or_none()


def test_partitions_ahead_on_demand_and_retention(engine: Engine) -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    made = make_ahead(engine, now)
    assert made == ["observation_2026_12", "observation_2027_01", "observation_2027_02"]
    ds = a_datastream(engine)
    times = ["2025-01-15T00:00:00Z", "2025-06-15T00:00:00Z", "2026-11-20T00:00:00Z"]
    create_observations(
        engine,
        [({"result": float(i), "phenomenonTime": t}, "t", ds) for i, t in enumerate(times)],
        MANAGER,
    )
    with engine.connect() as conn:
        months = {m.strftime("%Y-%m") for m in existing_months(conn)}
    assert {"2025-01", "2025-06", "2026-11", "2026-12"} <= months
    # latest: the newest by phenomenon time; the span of all
    result, start, first, last = latest(engine, ds)
    assert result == 2.0 and start == datetime(2026, 11, 20, tzinfo=UTC)
    assert first == datetime(2025, 1, 15, tzinfo=UTC)
    # an older one arriving late does not become the latest, but widens nothing it is inside
    create_observations(
        engine, [({"result": 9.0, "phenomenonTime": "2026-11-01T00:00:00Z"}, "t", ds)], MANAGER
    )
    assert latest(engine, ds)[0] == 2.0
    dropped = retain(engine, timedelta(days=400), now)
    assert dropped == ["observation_2025_01", "observation_2025_06"]  # before 2025-10-28
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM twin_observation")).scalar_one()
        names = {m.strftime("%Y-%m") for m in existing_months(conn)}
    assert "2025-01" not in names
    assert left == 2
    assert latest(engine, ds)[2] == datetime(2026, 11, 1, tzinfo=UTC)  # the span moved on
    assert latest(engine, ds)[0] == 2.0


def test_retain_command_says_what_it_dropped_and_refuses_a_bad_age(
    engine: Engine, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CIM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    bad = runner.invoke(main, ["twin", "retain", "--older-than", "soon"])
    assert bad.exit_code == 2 and "400d" in bad.output
    none = runner.invoke(main, ["twin", "retain", "--older-than", "400d"])
    assert none.exit_code == 0, none.output
    assert "no month" in none.output


def test_dump_and_restore_keep_the_twin(engine: Engine, new_database: Any, tmp_path: Path) -> None:
    ds = a_datastream(engine)
    create_observations(
        engine,
        [
            ({"result": float(i), "phenomenonTime": f"2026-0{m}-0{d}T00:00:00Z"}, "t", ds)
            for i, (m, d) in enumerate([(1, 1), (5, 2), (9, 3)])
        ],
        MANAGER,
    )
    dump = tmp_path / "twin.dump"
    backup.dump(engine.url.render_as_string(hide_password=False), dump)
    other = new_database()
    backup.restore(other.url.render_as_string(hide_password=False), dump)
    with other.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM twin_observation")).scalar_one() == 3
        assert (
            conn.execute(
                text("SELECT result_number FROM twin_latest WHERE datastream_id = :d"), {"d": ds}
            ).scalar_one()
            == 2.0
        )
        months = {m.strftime("%Y-%m") for m in existing_months(conn)}
        assert {"2026-01", "2026-05", "2026-09"} <= months
    other.dispose()
