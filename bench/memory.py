"""Peak memory of `cim ingest` as the file grows: the same generator at several sizes.

Streaming means the peak should barely move from 10,000 to 1,000,000 buildings.

    python bench/memory.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench.ingest import OUT, TIME, _file, _run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not Path(TIME).exists():
        sys.exit("needs /usr/bin/time (Debian package 'time') to measure peak memory")
    OUT.mkdir(exist_ok=True)
    cim = str(Path(sys.executable).with_name("cim"))
    rows = []
    with bench_database() as url:
        env = {**os.environ, "CIM_DATABASE_URL": url}
        for size in args.sizes:
            path = _file(size, args.seed, True)
            t = time.perf_counter()
            elapsed, peak, report = _run(cim, path, f"m{size}", env)
            rows.append((size, path.stat().st_size / 1e6, elapsed, peak))
            print(
                f"{size:,} buildings: {elapsed:.1f} s, peak {peak:.0f} MB "
                f"({time.perf_counter() - t:.0f} s with start-up)"
            )
    print()
    print(f"{'buildings':>10} {'file MB':>8} {'seconds':>8} {'buildings/s':>12} {'peak MB':>8}")
    for size, mb, elapsed, peak in rows:
        print(f"{size:>10,} {mb:>8.0f} {elapsed:>8.1f} {size / elapsed:>12,.0f} {peak:>8.0f}")


if __name__ == "__main__":
    main()
