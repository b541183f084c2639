"""CIM indicators of a large city: the time each model indicator takes over its declared area,
run the way the service runs it (a job), on a generated city of N buildings with its roads,
lights, cameras, 5G stations and sensors. Not a test: it passes or fails on nothing.

    python bench/indicators.py --buildings 50000
    python bench/indicators.py --buildings 1000000 --reuse   # the file is generated once
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from cim.db.engine import make_engine  # noqa: E402
from demo.city import DEMO_CENTRE_LONLAT, generate_city  # noqa: E402
from grading import access, jobs, rounds  # noqa: E402
from grading.areas import declare_area  # noqa: E402
from grading.awards import built_in_policy  # noqa: E402
from grading.catalogue import built_in  # noqa: E402
from grading.evidence import EvidenceFile  # noqa: E402
from grading.platform import FUNCTION_GROUPS, declare_function  # noqa: E402
from ingest.pipeline import ingest_files  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def _area(buildings: int) -> bytes:
    """A lon/lat square around the demo centre, wide enough for the whole generated city."""
    half_deg = 0.02 + 0.00003 * buildings**0.5  # the city grows with the square root
    lon, lat = DEMO_CENTRE_LONLAT
    ring = [
        [lon - half_deg, lat - half_deg],
        [lon + half_deg, lat - half_deg],
        [lon + half_deg, lat + half_deg],
        [lon - half_deg, lat + half_deg],
        [lon - half_deg, lat - half_deg],
    ]
    return json.dumps({"type": "Polygon", "coordinates": [ring]}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"indicators-city-{args.buildings}-{args.seed}.city.json"
    if not path.exists():
        t = time.perf_counter()
        s = generate_city(path, buildings=args.buildings, seed=args.seed)
        print(f"generated {s.total:,} objects in {time.perf_counter() - t:.0f} s")
    with bench_database() as url:
        engine = make_engine(url)
        t = time.perf_counter()
        ingest_files(engine, [path], "370100")
        print(f"ingested in {time.perf_counter() - t:.0f} s")
        admin = access.cli_actor("bench")
        rounds.create_round(
            engine,
            admin,
            "bench",
            "bench",
            2026,
            built_in("db37-3890.1-2020"),
            built_in_policy("shandong-example"),
            [rounds.CityEntry("370100", "济南市", "Jinan")],
        )
        area = EvidenceFile("area.geojson", _area(args.buildings), "application/geo+json")
        declared = declare_area(engine, admin, "bench", "370100", area, "built_up", "bench")
        proof = EvidenceFile("p.txt", b"bench", "text/plain")
        for group in FUNCTION_GROUPS:
            declare_function(engine, admin, "bench", "370100", group, proof)
        times: dict[str, float] = {}
        last = [time.perf_counter(), ""]

        def step(name: str, done: int, of: int) -> None:
            now = time.perf_counter()
            if last[1]:
                times[str(last[1])] = now - float(last[0])
                print(f"  {last[1]:<22} {times[str(last[1])]:8.1f} s", flush=True)
            last[0], last[1] = now, name

        t = time.perf_counter()
        job = jobs.start(engine, admin, "bench", "370100", background=False, progress=step)
        total = time.perf_counter() - t
        print(f"{args.buildings:,} buildings, area {declared.area_km2:,.1f} km²")
        print(f"  {'all (one job)':<22} {total:8.1f} s   status {job.status}")


if __name__ == "__main__":
    main()
