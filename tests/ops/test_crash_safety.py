"""Crash safety: `cim ingest`, `cim tiles seed` and `cim grade values import` are killed with
SIGKILL at 20 random moments each (a fixed seed, so failures can be replayed). Afterwards no
partial dataset is visible through the command line or the API, no cached tile is truncated,
no value of a half-done import is there, and a run to the end gives exact counts."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from demo.city import generate_city
from demo.round import VALUES
from tiles.gltf import read_glb

CIM = str(Path(sys.executable).with_name("cim"))
KILLS = 20


def _env(engine: Engine) -> dict[str, str]:
    url = engine.url.render_as_string(hide_password=False)
    return {**os.environ, "CIM_DATABASE_URL": url, "CIM_ACTOR": "crash-test"}


def _run(args: list[str], env: dict[str, str]) -> tuple[int, float]:
    """Run `cim ARGS` to the end; its exit code and duration."""
    started = time.perf_counter()
    done = subprocess.run([CIM, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.returncode, time.perf_counter() - started


def _killed_at(args: list[str], env: dict[str, str], delay: float) -> bool:
    """Start `cim ARGS`, SIGKILL it (and any worker it forked) after `delay` seconds; whether
    it was still running then."""
    process = subprocess.Popen(
        [CIM, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


def _moments(duration: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.05, duration) for _ in range(KILLS)]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    city = generate_city(tmp_path_factory.mktemp("crash") / "big.city.json", buildings=4000, seed=9)
    return city.path, city.total


def _visible(engine: Engine, env: dict[str, str], city: str) -> tuple[int, int, int, int]:
    """What each way of looking sees of a city: datasets on the command line, objects through
    the API, and rows in the database (objects, geometries)."""
    listed = subprocess.run(
        [CIM, "datasets", "list", "--city", city, "--json"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    items = TestClient(create_app(engine=engine)).get(f"/collections/{city}/items?limit=1")
    served = items.json()["numberMatched"] if items.status_code == 200 else 0
    with engine.connect() as conn:
        objects = conn.execute(
            text("SELECT count(*) FROM city_object WHERE city_code = :c"), {"c": city}
        ).scalar_one()
        geometries = conn.execute(
            text("SELECT count(*) FROM object_geometry WHERE city_code = :c"), {"c": city}
        ).scalar_one()
    return len(json.loads(listed.stdout)), served, objects, geometries


def test_a_killed_ingest_leaves_nothing_and_a_rerun_is_exact(
    new_database: Callable[[], Engine], big: tuple[Path, int]
) -> None:
    path, total = big
    probe = new_database()
    _, duration = _run(["ingest", str(path), "--city", "probe"], _env(probe))
    engine = new_database()
    env = _env(engine)
    killed = empty = 0
    for delay in _moments(duration, seed=1):
        killed += _killed_at(["ingest", str(path), "--city", "crash"], env, delay)
        seen = _visible(engine, env, "crash")
        # nothing at all, or (killed after its commit, or finished) the whole dataset
        assert seen[:3] in ((0, 0, 0), (1, total, total)), f"after {delay:.2f} s: {seen}"
        if seen[0]:
            _run(["datasets", "delete", path.name, "--city", "crash"], env)
        else:
            empty += 1
            assert seen[3] == 0  # no geometry left behind either
    assert killed >= KILLS // 2 and empty >= KILLS // 3  # most kills hit a running ingest
    _run(["ingest", str(path), "--city", "crash"], env)
    assert _visible(engine, env, "crash")[:3] == (1, total, total)


def _cached_tiles_whole(engine: Engine) -> int:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT content, etag FROM tile_cache")).all()
    for content, etag in rows:
        content = bytes(content)
        assert hashlib.sha256(content).hexdigest()[:32] == etag  # stored as it was made
        read_glb(content)  # its own length and chunks are whole
    return len(rows)


def test_a_killed_tile_seed_leaves_no_truncated_tile(
    new_database: Callable[[], Engine], big: tuple[Path, int]
) -> None:
    path, _ = big
    engine = new_database()
    env = _env(engine)
    _run(["ingest", str(path), "--city", "seeded"], env)
    _, duration = _run(["tiles", "seed", "--city", "seeded"], env)
    with engine.begin() as conn:
        expected = conn.execute(text("DELETE FROM tile_cache")).rowcount
    for delay in _moments(duration, seed=2):
        _killed_at(["tiles", "seed", "--city", "seeded"], env, delay)
        assert _cached_tiles_whole(engine) <= expected
    _run(["tiles", "seed", "--city", "seeded"], env)
    assert _cached_tiles_whole(engine) == expected


def test_a_killed_grading_import_leaves_no_value(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    engine = new_database()
    env = _env(engine)
    create = ["grade", "round", "create", "r", "--year", "2026", "--catalogue"]
    create += ["db37-3890.1-2020", "--policy", "shandong-example", "--cities", "shandong"]
    _run(create, env)
    _, duration = _run(["grade", "values", "import", "r", str(VALUES)], env)

    def values() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM grading_value")).scalar_one()

    full = values()
    assert full > 200
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM grading_value"))
        conn.execute(text("DELETE FROM grading_evidence"))
    for delay in _moments(duration, seed=3):
        _killed_at(["grade", "values", "import", "r", str(VALUES)], env, delay)
        found = values()  # none, or (killed after its commit, or finished) every one
        assert found in (0, full), f"{found} values after a kill at {delay:.2f} s"
        if found:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM grading_value"))
                conn.execute(text("DELETE FROM grading_evidence"))
    _run(["grade", "values", "import", "r", str(VALUES)], env)
    assert values() == full
