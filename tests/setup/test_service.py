"""What `make run` does, step by step as the Makefile runs it: load the demo city through the real
ingest path, serve it, and answer on HTTP (against the test database)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import Engine

from tests.conftest import free_port

CIM = str(Path(sys.executable).with_name("cim"))


def test_demo_city_is_loaded_once_and_served(engine: Engine, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CIM_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "CIM_DATA_DIR": str(tmp_path),
        "CIM_API_GRADING_PUBLIC_DRAFTS": "true",  # as `make run` serves the demo round
    }
    load = [CIM, "demo", "load", "--buildings", "300"]
    first = subprocess.run(load, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "objects loaded" in first.stdout
    assert "demo grading round demo-2026 created" in first.stdout
    assert "parcels with their limits" in first.stdout
    again = subprocess.run(load, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already loaded" in again.stdout  # re-running is quick
    assert "grading round" not in again.stdout  # and does not make a second round

    port = free_port()
    server = subprocess.Popen(
        [CIM, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"{base}/collections/370100/items?type=Building&limit=5")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "the service did not answer in 60 s"
                time.sleep(0.3)
        assert r.status_code == 200
        body = r.json()
        assert body["numberMatched"] == 300
        assert len(body["features"]) == 5
        title = httpx.get(f"{base}/collections/370100").json()["title"]
        assert "济南" in title
        # the demo grading round: 16 cities ranked, Jinan's model indicators from the demo city
        ranking = httpx.get(f"{base}/grading/rounds/demo-2026/ranking").json()["cities"]
        assert len(ranking) == 16 and ranking[0]["rank"] == 1
        jinan = httpx.get(f"{base}/grading/rounds/demo-2026/cities/370100").json()
        lod2 = next(i for i in jinan["indicators"] if i["id"] == "sheshi.lod2")
        assert lod2["value"] == 100.0 and "ST_SquareGrid" not in lod2["computed"]["query"]
        # its planning layer, and the indicators of its parcels: some break their limits
        parcels = httpx.get(f"{base}/collections/370100-parcels/items").json()
        assert parcels["numberMatched"] >= 4
        assert {"控高", "容积率", "height_limit"} <= parcels["features"][0]["properties"].keys()
        done = httpx.post(
            f"{base}/processes/parcel-indicators/execution",
            json={"inputs": {"city": "370100"}},
            timeout=60,
        ).json()
        built = [p for p in done["parcels"] if p["buildings"]]
        assert len(built) == parcels["numberMatched"]  # every parcel is a block with buildings
        assert sum(p["buildings"] for p in built) >= 300  # each building in one parcel at least
        dashboard = httpx.get(f"{base}/grading/dashboard")
        assert dashboard.status_code == 200 and "grading.js" in dashboard.text
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_help_teaches() -> None:
    out = subprocess.run([CIM, "--help"], capture_output=True, text=True).stdout
    for command in ("db", "demo", "ingest", "serve"):
        assert command in out
    ingest = subprocess.run([CIM, "ingest", "--help"], capture_output=True, text=True).stdout
    assert "--crs" in ingest and "Examples" in ingest
