"""Planning analyses at the size of a city: the demo city of `--buildings` buildings (100,000 by
default; streets, trees and street furniture with them) and its planning layer, ingested into a
throwaway PostGIS, then each analysis run in a process of its own as the service runs it
(`analysis.runs.submit`, kept as a job), `--runs` times. Prints the median wall time and the
peak memory of the process (its whole resident set: Python, NumPy, the database driver):

- sunlight (日照分析) at every window point of a 30-storey block (each floor's window line of
  its facades that the sun can face, a point every 3 m), 1-minute steps over the 大寒日 window
  (8:00-16:00 true solar time), against every object whose shadow can reach it;
- parcel indicators (指标核算) for every parcel of the city.

Targets (issue 17, 2 cores): sunlight <= 30 s for the block, parcel indicators <= 10 s for
the city. Not a test: it passes or fails on nothing.

    python bench/analysis.py                        # 100,000 buildings
    python bench/analysis.py --buildings 10000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench._gauge import gauge_ms  # noqa: E402
from bench.ingest import OUT, _file  # noqa: E402
from cim.db.engine import make_engine  # noqa: E402

CITY = "370100"
CIM = str(Path(sys.executable).with_name("cim"))


def child(url: str, process: str, inputs: str) -> None:
    """Run one analysis here and print its wall time, peak memory and a summary as JSON."""
    from analysis import runs

    engine = make_engine(url)
    started = time.perf_counter()
    run = runs.submit(engine, process, json.loads(inputs), wait=True)
    seconds = time.perf_counter() - started
    done = runs.get_run(engine, run.id, with_results=True)
    if done.status != "successful" or done.results is None:
        sys.exit(f"{process} failed: {done.message}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r = done.results
    summary = {k: r[k] for k in ("summary", "obstacles") if k in r}
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **summary}))


def measured(url: str, process: str, inputs: dict, runs: int) -> list[dict]:
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, __file__, "--child", url, process, json.dumps(inputs)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(done.stderr)
        out.append(json.loads(done.stdout))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from demo.parcels import write_parcels
    from ingest.parcels import ingest_parcels

    print(f"machine gauge: {gauge_ms():.0f} ms (lower is faster)")
    path = _file(args.buildings, args.seed, only_buildings=False)
    plan = OUT / f"bench-parcels-{args.buildings}-{args.seed}.geojson"
    write_parcels(plan, args.buildings, args.seed)
    with bench_database() as url:
        env = {**os.environ, "CIM_DATABASE_URL": url}
        t = time.perf_counter()
        done = subprocess.run(
            [CIM, "ingest", str(path), "--city", CITY], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(done.stderr)
        engine = make_engine(url)
        parcels = ingest_parcels(engine, plan, CITY).parcel_count
        print(
            f"city: {args.buildings:,} buildings and their streets, trees and furniture, "
            f"{parcels:,} parcels; ingested in {time.perf_counter() - t:.0f} s"
        )
        from sqlalchemy import text

        with engine.connect() as conn:
            block = conn.execute(
                text(
                    "SELECT source_id, z_max - z_min FROM city_object WHERE city_code = :c "
                    "AND type = 'Building' AND attributes ->> 'storeysAboveGround' = '30' "
                    "ORDER BY source_id LIMIT 1"
                ),
                {"c": CITY},
            ).first()
            if block is None:
                sys.exit("the city has no 30-storey building: use more --buildings")
            # the distance within which the 500 nearest other buildings stand
            radius = conn.execute(
                text(
                    "SELECT ST_Distance(CAST(o.bbox AS geography), CAST(b.footprint AS geography))"
                    " AS d FROM city_object o, city_object b WHERE o.city_code = :c"
                    " AND b.city_code = :c AND b.source_id = :id AND o.type = 'Building'"
                    " AND o.id <> b.id ORDER BY d LIMIT 1 OFFSET 499"
                ),
                {"c": CITY, "id": block[0]},
            ).scalar_one()
        for name, extra in (
            ("objects whose shadow can reach it", {}),
            (f"every object within {radius:.0f} m (500 buildings)", {"radius": radius + 1.0}),
        ):
            inputs = {"city": CITY, "buildings": [block[0]], "year": 2027, **extra}
            sun_runs = measured(url, "sunlight", inputs, args.runs)
            s = sun_runs[0]
            print(
                f"sunlight, 30-storey block {block[0]} ({block[1]:.1f} m), against {name}: "
                f"{s['summary']['points']:,} window points x 480 minutes, "
                f"{s['obstacles']['objects']:,} objects ({s['obstacles']['triangles']:,} "
                f"triangles, radius {s['obstacles']['radius_m']:.0f} m); "
                f"{s['summary']['failing']:,} points under 2 h"
            )
            report("sunlight", sun_runs, 30.0)
        far_runs = measured(url, "parcel-indicators", {"city": CITY}, args.runs)
        f = far_runs[0]["summary"]
        print(
            f"parcel indicators: {f['parcels']:,} parcels, {f['exceeding_a_limit']:,} "
            "exceeding a limit"
        )
        report("parcel indicators", far_runs, 10.0)


def report(name: str, runs: list[dict], target: float) -> None:
    seconds = [r["seconds"] for r in runs]
    peaks = [r["peak_mb"] for r in runs]
    print(
        f"  {name}: median {statistics.median(seconds):.2f} s (runs: "
        + ", ".join(f"{x:.2f}" for x in seconds)
        + f"), peak memory {statistics.median(peaks):.0f} MB; target <= {target:g} s"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
