"""Load: 64 concurrent clients against `cim serve` on loopback for a bounded time, in a realistic
mix — a planner's viewer fetching warm tiles, applications paging the Features API, committee
members reading the grading dashboard — each client waiting a little between requests as people
and viewers do. Prints throughput, p50/p95/p99 latency and errors per kind of request, and the
server's memory at the start and the end. Not a test: it passes or fails on nothing.

    python bench/load.py --clients 64 --seconds 60

With --hostile, instead: heavy reads against `cim serve` (24 clients paging limit=10000 with
geometry, 4 clients asking for the report PDF again and again), with /health timed meanwhile
(median, p99):

    python bench/load.py --hostile --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench._hostile import percentile, rss_mb, serving  # noqa: E402

# share of each kind of request, and its URLs (filled once the city is loaded)
MIX = {"tile": 0.6, "features": 0.25, "dashboard": 0.15}


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, url: str
) -> int:
    """One HTTP/1.1 GET on a kept-alive connection (a lean client: the load generator shares
    the CPUs with the server, so it must cost little); the status code."""
    writer.write(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _client(
    base: str,
    urls: dict[str, list[str]],
    until: float,
    seed: int,
    out: list[tuple[str, float, int]],
) -> None:
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            url = rng.choice(urls[kind])
            started = time.perf_counter()
            try:
                status = await _get(reader, writer, f"{host}:{port}", url)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
            out.append((kind, time.perf_counter() - started, status))
            await asyncio.sleep(rng.uniform(0.2, 0.6))  # a person, or a viewer between frames
    finally:
        writer.close()


def _run_clients(args: tuple[str, dict[str, list[str]], int, float, int]) -> list[Any]:
    base, urls, clients, seconds, seed = args
    out: list[tuple[str, float, int]] = []
    until = time.monotonic() + seconds

    async def main() -> None:
        await asyncio.gather(
            *(_client(base, urls, until, seed * 1000 + n, out) for n in range(clients))
        )

    asyncio.run(main())
    return out


def analyze(engine: Any) -> None:
    """Table statistics gathered now, as autovacuum does within a minute or so: without them a
    page of 50 objects was planned as a sort of the whole city, ten times slower (the load would
    measure how soon autovacuum ran after the ingest)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0, help="unmeasured seconds first")
    parser.add_argument("--buildings", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--hostile", action="store_true", help="heavy reads instead")
    args = parser.parse_args()
    if args.hostile:
        hostile(args)
        return

    from cim.db.engine import make_engine
    from demo.city import generate_city
    from demo.round import load_demo_round
    from ingest.pipeline import ingest_files

    cim = str(Path(sys.executable).with_name("cim"))
    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        city = generate_city(Path(tmp) / "demo.city.json", buildings=args.buildings, seed=5)
        ingest_files(engine, [city.path], "370100", city_name_zh="济南市")
        load_demo_round(engine)
        analyze(engine)
        # the demo round is a draft: served to all, as `make run` serves it (else every dashboard
        # read is a 401, and an audited one)
        env = {**os.environ, "CIM_DATABASE_URL": url, "CIM_API_GRADING_PUBLIC_DRAFTS": "true"}
        subprocess.run([cim, "tiles", "seed", "--city", "370100"], env=env, check=True)
        public = {"CIM_API_GRADING_PUBLIC_DRAFTS": "true"}
        with serving(url, args.workers, **public) as (base, pid):
            tileset = httpx.get(f"{base}/collections/370100/3dtiles/tileset.json").json()
            tiles: list[str] = []

            def walk(tile: dict[str, Any]) -> None:
                if "content" in tile:
                    tiles.append(f"/collections/370100/3dtiles/{tile['content']['uri']}")
                for child in tile.get("children", []):
                    walk(child)

            walk(tileset["root"])
            urls = {
                "tile": tiles,
                "features": [
                    f"/collections/370100/items?limit=50&offset={n * 50}" for n in range(40)
                ]
                + [
                    f"/collections/370100/items?limit=20&type=Building&offset={n * 20}"
                    for n in range(40)
                ],
                "dashboard": [
                    "/grading/rounds/demo-2026/ranking",
                    "/grading/rounds/demo-2026/allocation",
                    "/grading/rounds/demo-2026/cities/370100",
                    "/grading/rounds/demo-2026/cities/370200/radar.svg",
                    "/grading/rounds",
                ],
            }
            for kind_urls in urls.values():  # warm: every URL once
                for u in kind_urls:
                    httpx.get(f"{base}{u}", timeout=60)
            per = args.clients // args.processes
            with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
                # the same load, unmeasured, until every server process has its caches warm
                warm = [(base, urls, per, args.warmup, 100 + n) for n in range(args.processes)]
                pool.map(_run_clients, warm)
                start_rss = rss_mb(pid)
                jobs = [(base, urls, per, args.seconds, n) for n in range(args.processes)]
                t0 = time.perf_counter()
                results = [r for part in pool.map(_run_clients, jobs) for r in part]
                elapsed = time.perf_counter() - t0
            end_rss = rss_mb(pid)

    print(
        f"\n{args.clients} clients, {args.seconds:.0f} s after {args.warmup:.0f} s of warm-up, "
        f"{args.buildings:,} buildings, "
        f"{len(tiles)} tiles, {args.workers} server processes, {os.cpu_count()} CPUs (server, "
        "PostGIS and clients share them)"
    )
    print(
        f"{'requests':<10} {'count':>7} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6}"
    )
    for kind in [*MIX, "all"]:
        rows = [r for r in results if kind == "all" or r[0] == kind]
        lat = [r[1] * 1000 for r in rows]
        errors = sum(1 for r in rows if not 200 <= r[2] < 400)
        print(
            f"{kind:<10} {len(rows):>7} {len(rows) / elapsed:>7.1f} {percentile(lat, 0.5):>7.1f} "
            f"{percentile(lat, 0.95):>7.1f} {percentile(lat, 0.99):>7.1f} {errors:>6}"
        )
    change = (end_rss - start_rss) / start_rss * 100
    print(
        f"server memory: {start_rss:.0f} MB at the start, {end_rss:.0f} MB at the end "
        f"({change:+.1f} %)"
    )
    print(f"median latency, all: {statistics.median(r[1] for r in results) * 1000:.1f} ms")


def hostile(args: argparse.Namespace) -> None:
    """The heavy reads of issue 13 against `cim serve` (`--workers`; drafts public, as `make
    run` serves them), /health timed during each case."""
    from bench._hostile import HEADER, HealthProbe, idle, repeat, run_case, send_request
    from cim.db.engine import make_engine
    from demo.city import generate_city
    from demo.round import DEMO_ROUND, load_demo_round
    from ingest.pipeline import ingest_files

    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        city = generate_city(Path(tmp) / "demo.city.json", buildings=args.buildings, seed=5)
        ingest_files(engine, [city.path], "370100", city_name_zh="济南市")
        load_demo_round(engine)
        analyze(engine)
        public = {"CIM_API_GRADING_PUBLIC_DRAFTS": "true"}
        with serving(url, args.workers, **public) as (base, pid), HealthProbe(base) as probe:
            page = httpx.get(f"{base}/collections/370100/items?limit=10000", timeout=300)
            print(
                f"a page of limit=10000: {page.json()['numberReturned']:,} objects, "
                f"{len(page.content) / 1e6:.1f} MB"
            )
            print(f"\n{args.workers} server process(es), {os.cpu_count()} CPUs\n{HEADER}")
            run_case("at rest", probe, lambda: idle(3), pid)

            async def big_page(k: int) -> str:
                path = f"/collections/370100/items?limit=10000&offset={k % 2}"
                return (await send_request(base, "GET", path))[0]

            run_case(
                "24 clients, items?limit=10000",
                probe,
                lambda: repeat(args.seconds, 24, big_page),
                pid,
            )

            async def pdf(k: int) -> str:
                path = f"/grading/rounds/{DEMO_ROUND}/report.pdf?lang={('zh', 'en')[k % 2]}"
                return (await send_request(base, "GET", path))[0]

            run_case(
                "4 clients, report.pdf (zh, en)",
                probe,
                lambda: repeat(args.seconds, 4, pdf),
                pid,
            )


if __name__ == "__main__":
    main()
