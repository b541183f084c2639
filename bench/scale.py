"""Scale: generated cities of 10,000, 100,000 and 1,000,000 LoD2 buildings (and optionally a
generated LAS point cloud) through `cim ingest`, `cim tiles seed` and `cim serve`, each in a
process of its own. Prints per city: ingest (until its writes are on disk) and seeding
buildings/s with their peak memory (seeding: the median of `--seed-runs` runs), the
tileset JSON's size (explicit and implicit), warm latency of the tileset JSON and of tiles, the
p95 of cold tiles (made from PostGIS), and the number, largest and mean size of the tile
contents: the explicit tileset's (fetched: seeded, but for over-full tiles of a city served
implicit, made on request) and the implicit one's,
walked through its subtree files (where over-full tiles are given out to finer cells). Not a
test: it passes or fails on nothing.

    python bench/scale.py --sizes 10000,100000           # 1,000,000 takes long: run it last
    python bench/scale.py --sizes 10000 --points 10000000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench._gauge import gauge_ms  # noqa: E402
from bench.ingest import OUT, TIME, _file  # noqa: E402
from bench.pointcloud import generate as generate_las  # noqa: E402
from bench.tiles import _free_port, _serve, _timed  # noqa: E402
from cim.db.engine import make_engine  # noqa: E402
from tiles.implicit import CONTENT_URI, availability_bits, local_key, read_subtree  # noqa: E402
from tiles.service import content_uris  # noqa: E402

COLD_SAMPLE = 200  # tiles fetched cold (cache emptied) for the p95
WARM_REQUESTS = 300


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latencies(client: httpx.Client, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        t = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def _implicit_contents(client: httpx.Client, base: str) -> tuple[list[int], float]:
    """The size of every content of the city's implicit tileset, walked through its subtree
    files as a viewer would, and the seconds that took (contents made on first request)."""
    t = time.perf_counter()
    root = client.get(f"{base}/tileset.json?implicit=true").json()["root"]
    template = root["content"]["uri"]
    n = root["implicitTiling"]["subtreeLevels"]
    total = ((1 << (2 * n)) - 1) // 3
    sizes, pending = [], [(0, 0, 0)]
    while pending:
        level, x, y = pending.pop()
        r = client.get(f"{base}/subtrees/{level}/{x}/{y}.subtree")
        r.raise_for_status()
        doc, binary = read_subtree(r.content)

        content = availability_bits(doc, binary, doc["contentAvailability"][0], total)
        for index in np.flatnonzero(content).tolist():
            d, lx, ly = local_key(index)
            key = (level + d, (x << d) + lx, (y << d) + ly)
            got = client.get(f"{base}/" + template.format(level=key[0], x=key[1], y=key[2]))
            got.raise_for_status()
            sizes.append(len(got.content))
        children = availability_bits(doc, binary, doc["childSubtreeAvailability"], 1 << (2 * n))
        for index in np.flatnonzero(children).tolist():
            _, lx, ly = local_key(index + total)
            pending.append((level + n, (x << n) + lx, (y << n) + ly))
    return sizes, time.perf_counter() - t


def _peak_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _settle(engine: Engine) -> float:
    """Seconds until what an ingest wrote is on disk (a CHECKPOINT, then the kernel's dirty
    pages written): counted with the ingest, whose cost it is, and not left to slow the
    seeding timed next (after a million buildings, gigabytes of WAL and heap were still being
    written back while the tiles were made)."""
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CHECKPOINT"))
    os.sync()
    return time.perf_counter() - started


def _unseed(engine: Engine, city: str) -> None:
    """The city's kept contents deleted, their space vacuumed and the writes settled (untimed),
    so that the next `cim tiles seed` makes every tile again."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": city})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM tile_cache"))
    _settle(engine)


def _city(
    url: str, path: Path, city: str, objects: int, ingest_args: list[str], seed_runs: int
) -> dict:
    bin_dir = Path(sys.executable).parent
    cim = str(bin_dir / "cim")
    env = {**os.environ, "CIM_DATABASE_URL": url}
    ingest_s, ingest_mb, _ = _timed([cim, "ingest", str(path), "--city", city, *ingest_args], env)
    engine = make_engine(url)
    ingest_s += _settle(engine)
    seeds: list[tuple[float, float]] = []  # seconds, peak MB
    gauges: list[float] = []  # the machine's speed just before each seeding (bench._gauge)
    for run in range(seed_runs):
        if run:
            _unseed(engine, city)
        gauges.append(gauge_ms())
        seeds.append(_timed([cim, "tiles", "seed", "--city", city], env)[:2])
    seed_s = statistics.median(s for s, _ in seeds)
    seed_mb = max(mb for _, mb in seeds)
    with engine.connect() as conn:
        keys = conn.execute(
            text(
                "SELECT tile_level, tile_x, tile_y, length(content) FROM tile_cache"
                " WHERE city_code = :c AND format = 'glb'"
            ),
            {"c": city},
        ).all()
    port = _free_port()
    server = _serve([cim, "serve", "--port", str(port)], env, port)
    base = f"http://127.0.0.1:{port}/collections/{city}/3dtiles"
    plain = {"Accept-Encoding": "identity"}
    try:
        with httpx.Client(timeout=120) as client:
            explicit = client.get(f"{base}/tileset.json?implicit=false", headers=plain)
            # every content of the explicit tileset (over-full tiles, which seeding leaves to
            # the explicit tileset's requests, are made now)
            sizes = [
                len(client.get(f"{base}/{uri.partition('?')[0]}", headers=plain).content)
                for uri in content_uris(explicit.json()).values()
            ]
            implicit = client.get(f"{base}/tileset.json?implicit=true", headers=plain)
            default = client.get(f"{base}/tileset.json").json()
            warm_json = _latencies(client, [f"{base}/tileset.json"] * WARM_REQUESTS)
            warm_implicit = _latencies(
                client, [f"{base}/tileset.json?implicit=true"] * WARM_REQUESTS
            )
            uris = [CONTENT_URI.format(level=k[0], x=k[1], y=k[2]) for k in keys]
            sample = random.Random(1).sample(uris, min(COLD_SAMPLE, len(uris)))
            _latencies(client, [f"{base}/{u}" for u in sample])  # into the server's memory
            warm_tiles = _latencies(client, [f"{base}/{u}" for u in sample])
        serve_mb = _peak_mb(server.pid)
    finally:
        server.terminate()
        server.wait()
    # cold: a new server and no kept tile, so each content is made from PostGIS
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": city})
    server = _serve([cim, "serve", "--port", str(port)], env, port)
    try:
        with httpx.Client(timeout=120) as client:
            client.get(f"{base}/tileset.json").raise_for_status()
            cold = _latencies(client, [f"{base}/{u}" for u in sample])
            implicit_sizes, implicit_s = _implicit_contents(client, base)
        serve_mb = max(serve_mb, _peak_mb(server.pid))
    finally:
        server.terminate()
        server.wait()
        engine.dispose()
    return {
        "objects": objects,
        "ingest/s": objects / ingest_s,
        "ingest MB": ingest_mb,
        "seed/s": objects / seed_s,
        "seed/s runs": " ".join(f"{objects / s:,.0f}" for s, _ in seeds),
        "gauges": " ".join(f"{g:.0f}" for g in gauges),
        "seed MB": seed_mb,
        "serve MB": serve_mb,
        "explicit KB": len(explicit.content) / 1024,
        "implicit KB": len(implicit.content) / 1024,
        "default": "implicit" if "implicitTiling" in default["root"] else "explicit",
        "json p50 ms": statistics.median(warm_json),
        "json p95 ms": _ms(warm_json, 0.95),
        "implicit p50 ms": statistics.median(warm_implicit),
        "implicit p95 ms": _ms(warm_implicit, 0.95),
        "warm tile p50 ms": statistics.median(warm_tiles),
        "cold tile p95 ms": _ms(cold, 0.95),
        "tiles": len(sizes),
        "largest MB": max(sizes) / 1e6,
        "mean KB": sum(sizes) / len(sizes) / 1e3,
        "over 2 MB": sum(s > 2_000_000 for s in sizes),
        "split": "cells/" in implicit.text,
        "i tiles": len(implicit_sizes),
        "i largest MB": max(implicit_sizes) / 1e6,
        "i mean KB": sum(implicit_sizes) / len(implicit_sizes) / 1e3,
        "i over 2 MB": sum(s > 2_000_000 for s in implicit_sizes),
        "i seconds": implicit_s,
    }


ROWS = [
    ("ingest, objects/s", "ingest/s", "{:,.0f}"),
    ("ingest peak MB", "ingest MB", "{:,.0f}"),
    ("seeding, objects/s", "seed/s", "{:,.0f}"),
    ("seeding runs, objects/s", "seed/s runs", "{}"),
    ("machine gauge ms (before)", "gauges", "{}"),
    ("seeding peak MB", "seed MB", "{:,.0f}"),
    ("server peak MB", "serve MB", "{:,.0f}"),
    ("tileset JSON explicit KB", "explicit KB", "{:,.1f}"),
    ("tileset JSON implicit KB", "implicit KB", "{:,.2f}"),
    ("tileset served as", "default", "{}"),
    ("default JSON warm p50 ms", "json p50 ms", "{:.2f}"),
    ("default JSON warm p95 ms", "json p95 ms", "{:.2f}"),
    ("implicit JSON warm p50 ms", "implicit p50 ms", "{:.2f}"),
    ("implicit JSON warm p95 ms", "implicit p95 ms", "{:.2f}"),
    ("tile warm p50 ms", "warm tile p50 ms", "{:.2f}"),
    ("tile cold p95 ms", "cold tile p95 ms", "{:.1f}"),
    ("tiles", "tiles", "{:,}"),
    ("largest tile MB", "largest MB", "{:.2f}"),
    ("mean tile KB", "mean KB", "{:,.0f}"),
    ("tiles over 2 MB", "over 2 MB", "{:,}"),
    ("implicit: dense tiles split", "split", "{}"),
    ("implicit: contents", "i tiles", "{:,}"),
    ("implicit: largest MB", "i largest MB", "{:.2f}"),
    ("implicit: mean KB", "i mean KB", "{:,.0f}"),
    ("implicit: over 2 MB", "i over 2 MB", "{:,}"),
    ("implicit: all fetched, s", "i seconds", "{:,.1f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="buildings per city")
    parser.add_argument("--points", type=int, default=0, help="also a LAS file of this many")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--seed-runs",
        type=int,
        default=3,
        help="seedings of each city (the kept contents deleted, untimed, before each after the "
        "first); the median is printed",
    )
    args = parser.parse_args()
    if not Path(TIME).exists():
        sys.exit("needs /usr/bin/time (Debian package 'time') to measure peak memory")
    OUT.mkdir(exist_ok=True)
    results: dict[str, dict] = {}
    with bench_database() as url:
        for n in [int(s) for s in args.sizes.split(",") if s]:
            path = _file(n, args.seed, True)
            results[f"{n:,} bldgs"] = _city(url, path, f"s{n}", n, [], args.seed_runs)
            print(f"{n:,} buildings: {results[f'{n:,} bldgs']}", flush=True)
        if args.points:
            las = OUT / f"scale-{args.points}-{args.seed}.las"
            if not las.exists():
                generate_las(las, args.points, args.seed)
            label = f"{args.points / 1e6:g}M points"
            results[label] = _city(url, las, "points", args.points, [], args.seed_runs)
            print(f"{label}: {results[label]}", flush=True)
    print(f"\nCIM at scale, {os.cpu_count()} CPUs")
    print(f"{'':<26}" + "".join(f"{k:>16}" for k in results))
    for label, key, fmt in ROWS:
        print(f"{label:<26}" + "".join(f"{fmt.format(r[key]):>16}" for r in results.values()))


if __name__ == "__main__":
    main()
