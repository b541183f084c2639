"""An ingest lands whole or not at all: interrupting it midway leaves the database untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text

from demo.city import generate_city
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

CIM = str(Path(sys.executable).with_name("cim"))


def _rows(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
            for t in ("dataset", "city_object", "object_geometry")
        )


def test_interrupted_ingest_leaves_nothing(engine: Engine, tmp_path: Path) -> None:
    ingest_files(engine, [SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json"], "x")
    before = _rows(engine)
    path = generate_city(
        tmp_path / "big.city.json", buildings=40_000, seed=3, only_buildings=True
    ).path
    env = {**os.environ, "CIM_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    proc = subprocess.Popen(
        [CIM, "ingest", str(path), "--city", "x"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until rows are being written (the COPY has started), then interrupt
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with engine.connect() as conn:
            busy = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%'")
            ).scalar_one()
        if busy:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the ingest ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "nothing was written" in err
    assert _rows(engine) == before


def test_a_landed_ingest_leaves_the_planner_fresh_statistics(
    new_database: Callable[[], Engine],
) -> None:
    """The queries that follow an ingest (tiles, indicators) are planned for the tables as they
    are now: the ingest analyses what it wrote, without waiting for autovacuum."""
    engine = new_database()
    ingest_files(engine, [SHARED / "cityjson/delft_mixed_objects_v2.0/delft.city.json"], "d")
    with engine.connect() as conn:
        for table in ("city_object", "object_geometry", "dataset"):
            counted = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
            estimated = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                {"t": table},
            ).scalar_one()
            assert (table, estimated) == (table, counted)
        analysed = conn.execute(
            text("SELECT tablename, attname FROM pg_stats WHERE schemaname = 'public'")
        ).all()
    # the geometry table is joined by its key: its key columns are analysed (not its geometry)
    geometry_columns = {a for t, a in analysed if t == "object_geometry"}
    assert {"city_code", "object_id", "idx"} <= geometry_columns
    object_columns = {a for t, a in analysed if t == "city_object"}
    assert {"city_code", "type", "tile_level", "bbox", "attributes"} <= object_columns
