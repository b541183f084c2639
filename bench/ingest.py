"""Ingest throughput: generated cities through `cim ingest`, end to end (a fresh process each run).

Two files: the target case, a city of N LoD2 buildings (buildings only, as cities deliver their
building layer), and the full demo city with its roads, trees, water, street lights, cameras,
5G stations and sensors (about 3.5 city objects per building). Prints the median over several
runs (each run re-ingests, replacing the dataset) of buildings/s and objects/s, and the ingest
process's peak memory. Not a test: it passes or fails on nothing.

    python bench/ingest.py --buildings 100000 --runs 3
    python bench/ingest.py --format citygml --buildings 50000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from demo.city import generate_city  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TIME = "/usr/bin/time"


SUFFIX = {"cityjson": ".city.json", "citygml": ".gml"}


def _file(buildings: int, seed: int, only_buildings: bool, fmt: str = "cityjson") -> Path:
    kind = "buildings" if only_buildings else "city"
    path = OUT / f"bench-{kind}-{buildings}-{seed}{SUFFIX[fmt]}"
    if not path.exists():
        t = time.perf_counter()
        s = generate_city(
            path, buildings=buildings, seed=seed, only_buildings=only_buildings, fmt=fmt
        )
        print(f"generated {s.total:,} objects in {time.perf_counter() - t:.1f} s -> {path.name}")
    return path


def _run(cim: str, path: Path, city: str, env: dict[str, str]) -> tuple[float, float, dict]:
    """One ingest: wall seconds, peak RSS in MB, the JSON report."""
    t = time.perf_counter()
    result = subprocess.run(
        [TIME, "-f", "%M", cim, "ingest", str(path), "--city", city, "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t
    if result.returncode != 0:
        sys.exit(f"ingest failed: {result.stderr}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return elapsed, peak_kb / 1024, json.loads(result.stdout)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=sorted(SUFFIX), default="cityjson")
    parser.add_argument(
        "--files", choices=["both", "buildings", "city"], default="both", help="which file(s)"
    )
    args = parser.parse_args()
    if not Path(TIME).exists():
        sys.exit("needs /usr/bin/time (Debian package 'time') to measure peak memory")
    OUT.mkdir(exist_ok=True)
    cim = str(Path(sys.executable).with_name("cim"))
    files = {}
    if args.files in ("both", "buildings"):
        files["buildings only"] = _file(args.buildings, args.seed, True, args.format)
    if args.files in ("both", "city"):
        files["full demo city"] = _file(args.buildings, args.seed, False, args.format)
    rows = []
    with bench_database() as url:
        env = {**os.environ, "CIM_DATABASE_URL": url}
        for label, path in files.items():
            times, peaks = [], []
            report: dict = {}
            for run in range(args.runs):
                elapsed, peak, report = _run(cim, path, label.split()[0], env)
                times.append(elapsed)
                peaks.append(peak)
                print(f"{label}, run {run + 1}: {elapsed:.1f} s, peak {peak:.0f} MB")
            median = statistics.median(times)
            rows.append((label, path, report["object_count"], median, max(peaks)))
    print()
    print(
        f"cim ingest, {args.format}, {args.buildings:,} LoD2 buildings, "
        f"median of {args.runs} runs, {os.cpu_count()} CPUs"
    )
    print(
        f"{'file':<16} {'MB':>6} {'objects':>9} {'seconds':>8} {'buildings/s':>12} "
        f"{'objects/s':>10} {'peak MB':>8}"
    )
    for label, path, objects, median, peak in rows:
        print(
            f"{label:<16} {path.stat().st_size / 1e6:>6.0f} {objects:>9,} {median:>8.1f} "
            f"{args.buildings / median:>12,.0f} {objects / median:>10,.0f} {peak:>8.0f}"
        )


if __name__ == "__main__":
    main()
