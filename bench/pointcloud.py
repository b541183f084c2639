"""Point-cloud ingest throughput: a generated LAS file through `cim ingest`, end to end (a fresh
process each run). Prints points/s and the ingest process's peak memory, median of the runs. Not
a test: it passes or fails on nothing.

    python bench/pointcloud.py --points 10000000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TIME = "/usr/bin/time"


def generate(path: Path, points: int, seed: int) -> None:
    """A LAS 1.4 file (point format 7: colour, GPS time) over 1 km x 1 km of Jinan (EPSG:4548):
    ground with noise, and a few hundred blocks of 'buildings' and 'vegetation' classes."""
    import laspy

    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(point_format=7, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([500000.0, 4058000.0, 0.0])
    header.add_crs(__import__("pyproj").CRS.from_epsg(4548))
    with laspy.open(path, mode="w", header=header) as out:
        left = points
        while left:
            n = min(left, 1_000_000)
            x = 500000.0 + rng.uniform(0, 1000, n)
            y = 4058000.0 + rng.uniform(0, 1000, n)
            z = 30.0 + 3 * np.sin(x / 50) + rng.normal(0, 0.05, n)
            cls = rng.choice([2, 5, 6], size=n, p=[0.5, 0.2, 0.3]).astype(np.uint8)
            z = z + np.where(
                cls == 6, rng.uniform(5, 60, n), np.where(cls == 5, rng.uniform(1, 15, n), 0)
            )
            record = laspy.ScaleAwarePointRecord.zeros(n, header=header)
            record.x, record.y, record.z = x, y, z
            record.classification = cls
            record.intensity = rng.integers(0, 65535, n, dtype=np.uint16)
            record.red = rng.integers(0, 65535, n, dtype=np.uint16)
            record.green = rng.integers(0, 65535, n, dtype=np.uint16)
            record.blue = rng.integers(0, 65535, n, dtype=np.uint16)
            record.gps_time = np.arange(points - left, points - left + n, dtype=np.float64)
            out.write_points(record)
            left -= n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cell-size", type=float, default=50.0)
    args = parser.parse_args()
    if not Path(TIME).exists():
        sys.exit("needs /usr/bin/time (Debian package 'time') to measure peak memory")
    OUT.mkdir(exist_ok=True)
    path = OUT / f"bench-points-{args.points}-{args.seed}.las"
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.points, args.seed)
        print(f"generated {args.points:,} points in {time.perf_counter() - t:.1f} s -> {path.name}")
    cim = str(Path(sys.executable).with_name("cim"))
    times, peaks = [], []
    with bench_database() as url:
        env = {**os.environ, "CIM_DATABASE_URL": url}
        for run in range(args.runs):
            t = time.perf_counter()
            result = subprocess.run(
                [
                    TIME,
                    "-f",
                    "%M",
                    cim,
                    "ingest",
                    str(path),
                    "--city",
                    "points",
                    "--cell-size",
                    str(args.cell_size),
                    "--json",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - t
            if result.returncode != 0:
                sys.exit(f"ingest failed: {result.stderr}")
            peak = int(result.stderr.strip().splitlines()[-1]) / 1024
            times.append(elapsed)
            peaks.append(peak)
            print(f"run {run + 1}: {elapsed:.1f} s, peak {peak:.0f} MB")
    median = statistics.median(times)
    print()
    print(
        f"cim ingest, {args.points:,} LAS points ({path.stat().st_size / 1e6:.0f} MB), "
        f"cells of {args.cell_size:g} m, median of {args.runs} runs, {os.cpu_count()} CPUs"
    )
    print(f"{'seconds':>8} {'points/s':>12} {'peak MB':>8}")
    print(f"{median:>8.1f} {args.points / median:>12,.0f} {max(peaks):>8.0f}")


if __name__ == "__main__":
    main()
