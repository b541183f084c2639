"""Serving speed, side by side in one run: `cim serve` with every tile warm against nginx (the
Debian package, on a free port) serving `cim tiles export` of the same city, both loaded by `wrk`
(Debian) with 32 connections going round every tile URL, without and with
`Accept-Encoding: gzip` (nginx sends the `.gz` files written next to the export, as
`gzip_static` does; CIM compresses each tile once and keeps it). Then cold tiles (made from
PostGIS, one client) and Features API pages of 100 objects (one client). Prints a table; passes
or fails on nothing.

    python bench/serve.py --buildings 100000 --seconds 15 --rounds 3

Every server is started and warmed first, then loaded in turn within each round (nginx, then
CIM, for each encoding), so that each round's ratios compare runs seconds apart; with several
rounds the medians of the ratios are printed too.

With `--before DIR` (a checkout of an earlier revision, e.g. `git archive HEAD | tar -x -C DIR`),
that code is served too, in the same run, from the same database (it is run with PYTHONPATH=DIR,
and asked for /conformance rather than /health, which would name the newer schema).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench._hostile import free_port, percentile  # noqa: E402
from bench._hostile import serving as hostile_serving  # noqa: E402

CITY = "370100"
NGINX = "/usr/sbin/nginx"
# wrk goes round the URL list, one per request, on every connection (Lua, as wrk offers)
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_URLS")) do paths[#paths + 1] = line end
local n = 0
local gz = os.getenv("BENCH_GZIP") == "1"
request = function()
  n = n + 1
  local headers = {}
  if gz then headers["Accept-Encoding"] = "gzip" end
  return wrk.format("GET", paths[(n % #paths) + 1], headers)
end
"""


def wrk(base: str, paths: list[str], gz: bool, seconds: float, tmp: Path) -> dict[str, float]:
    """`wrk -t2 -c32` over `paths` for `seconds`: requests/s, p50 and p99 (ms), errors."""
    urls = tmp / "urls.txt"
    urls.write_text("\n".join(paths) + "\n")
    script = tmp / "round.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_URLS": str(urls), "BENCH_GZIP": "1" if gz else "0"}
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds:g}s", "--latency", "-s", str(script), base]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    return {
        "rate": rate,
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "errors": int(errors[1]) if errors else 0,
        "socket": socket_errors[0] if socket_errors else "",  # type: ignore[dict-item]
    }


def warm_up(base: str, paths: list[str], gz: bool, tmp: Path) -> None:
    """Load until every worker has every tile in memory: 5 s runs of wrk until one is less than
    10 % faster than the one before (at most 8; the first pass fetches each tile from the
    database, and compresses it once for gzip, in each worker)."""
    before = 0.0
    for _ in range(8):
        rate = wrk(base, paths, gz, 5, tmp)["rate"]
        if rate < before * 1.1:
            return
        before = rate


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


@contextmanager
def nginx(root: Path, tmp: Path) -> Iterator[str]:
    """nginx (2 workers, as the 2 of `cim serve`) serving `root` on a free port."""
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        textwrap.dedent(f"""
        daemon off;
        worker_processes 2;
        pid {tmp}/nginx.pid;
        error_log {tmp}/nginx-error.log;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            sendfile on;
            tcp_nopush on;
            types {{ model/gltf-binary glb; application/json json;
                     application/octet-stream b3dm; }}
            gzip_static on;
            gzip_vary on;
            client_body_temp_path {tmp}/body;
            proxy_temp_path {tmp}/proxy;
            fastcgi_temp_path {tmp}/fastcgi;
            uwsgi_temp_path {tmp}/uwsgi;
            scgi_temp_path {tmp}/scgi;
            server {{
                listen 127.0.0.1:{port};
                root {root};
                etag on;
            }}
        }}
        """)
    )
    process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp)])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/tileset.json")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def serving(url: str, workers: int, code: Path | None = None) -> Iterator[str]:
    """`cim serve --workers N` on a free port (of the code under `code`, if given): its URL.
    Ready once /conformance answers: the code before a change answers /health with 503 on a
    database migrated past it."""
    env = {"PYTHONPATH": str(code)} if code is not None else {}
    with hostile_serving(url, workers, ready="/conformance", **env) as (base, _):
        yield base


def tile_urls(doc: dict[str, Any], prefix: str) -> list[str]:
    """Every tile content URL of a tileset, under `prefix`."""
    urls: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "content" in node:
            urls.append(prefix + node["content"]["uri"])
        for child in node.get("children", []):
            walk(child)

    walk(doc["root"])
    return urls


def timed(client: httpx.Client, urls: list[str], headers: dict[str, str]) -> list[float]:
    """Each URL fetched once, in order, on one connection: milliseconds each."""
    out = []
    for url in urls:
        started = time.perf_counter()
        answer = client.get(url, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="cim serve processes")
    parser.add_argument("--cold", type=int, default=100, help="cold tiles timed")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of wrk runs, every server in each"
    )
    args = parser.parse_args()

    from sqlalchemy import text

    from cim.db.engine import make_engine
    from demo.city import generate_city
    from ingest.pipeline import ingest_files

    cim = str(Path(sys.executable).with_name("cim"))
    with bench_database() as url, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx's workers (not root) read the export
        engine = make_engine(url)
        started = time.perf_counter()
        city = generate_city(tmp / "demo.city.json", buildings=args.buildings, seed=5)
        ingest_files(engine, [city.path], CITY, city_name_zh="济南市")
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        print(
            f"{args.buildings:,} buildings generated and ingested in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        env = {**os.environ, "CIM_DATABASE_URL": url}
        subprocess.run(
            [cim, "tiles", "seed", "--city", CITY], env=env, check=True, stdout=subprocess.DEVNULL
        )
        export = tmp / "export"
        subprocess.run(
            [cim, "tiles", "export", "--city", CITY, str(export)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        files = [p for p in export.rglob("*") if p.is_file()]
        for path in files:  # what gzip_static sends to a client that accepts gzip
            path.with_name(path.name + ".gz").write_bytes(
                gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
            )
        size = sum(p.stat().st_size for p in files)
        rows: list[tuple[int, str, str, dict[str, float]]] = []
        prefix = f"/collections/{CITY}/3dtiles/"
        with ExitStack() as running:
            # every server started and warm first, then loaded in turn, round after round: the
            # ratios of one round are what count on a shared machine whose speed drifts
            web = running.enter_context(nginx(export, tmp))
            web_paths = tile_urls(httpx.get(f"{web}/tileset.json").json(), "/")
            print(f"{len(web_paths)} tiles, {size / 1e6:.0f} MB exported", flush=True)
            for gz in (False, True):
                wrk(web, web_paths, gz, 3, tmp)  # warm: files in the page cache
            servers: list[tuple[str, str, list[str]]] = [("nginx, exported files", web, web_paths)]
            codes = [("before", args.before)] if args.before else []
            for label, code in [*codes, ("now", None)]:
                # each code's tiles made by itself first (a tile made by other code is made
                # again); once warm, each server answers from its own memory
                seeding = {**env, "PYTHONPATH": str(code)} if code else env
                subprocess.run(
                    [cim, "tiles", "seed", "--city", CITY],
                    env=seeding,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                base = running.enter_context(serving(url, args.workers, code))
                doc = httpx.get(f"{base}{prefix}tileset.json?implicit=false", timeout=120).json()
                paths = tile_urls(doc, prefix)
                for gz in (False, True):
                    warm_up(base, paths, gz, tmp)
                name = f"cim serve --workers {args.workers}, warm ({label})"
                servers.append((name, base, paths))
            for round_ in range(1, args.rounds + 1):
                for gz in (False, True):
                    for name, base, paths in servers:
                        result = wrk(base, paths, gz, args.seconds, tmp)
                        rows.append((round_, name, "gzip" if gz else "identity", result))
        with serving(url, args.workers) as base:
            pages = [
                f"{base}/collections/{CITY}/items?limit=100&offset={n * 100}" for n in range(200)
            ]
            with httpx.Client(timeout=60) as client:
                timed(client, pages[:20], {})  # plans and connections made once
                feature_ms = timed(client, pages, {"Accept-Encoding": "gzip"})
        # cold: the tile cache emptied, a fresh server, every tile asked for the first time
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tile_cache"))
        with serving(url, args.workers) as base:
            cold = [f"{base}{u}" for u in paths[:: max(1, len(paths) // args.cold)]]
            with httpx.Client(timeout=120) as client:
                cold_ms = timed(client, cold, {"Accept-Encoding": "gzip"})

    nginx_rate = {(n, enc): r["rate"] for n, name, enc, r in rows if name.startswith("nginx")}
    print(
        f"\n{args.buildings:,} buildings, {len(paths)} tiles, wrk -t2 -c32 -d{args.seconds:g}s "
        f"over every tile URL, {os.cpu_count()} CPUs shared by server, database and wrk, "
        f"{args.rounds} round(s), the servers in turn in each\n"
    )
    print("| round | server | encoding | requests/s | of nginx | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    shares: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for n, name, enc, r in rows:
        share = r["rate"] / nginx_rate[(n, enc)] * 100
        shares.setdefault((name, enc), []).append((share, r["p99"]))
        print(
            f"| {n} | {name} | {enc} | {r['rate']:,.0f} | {share:.0f} % | {r['p50']:.2f} | "
            f"{r['p99']:.2f} | {r['errors']:.0f} {r['socket']} |"
        )
    if args.rounds > 1:
        print("\nmedians over the rounds (of nginx in the same round):")
        for (name, enc), values in shares.items():
            if not name.startswith("nginx"):
                share = statistics.median(v[0] for v in values)
                p99 = statistics.median(v[1] for v in values)
                print(f"  {name}, {enc}: {share:.0f} % of nginx, p99 {p99:.2f} ms")
    print(
        f"\ncold tiles (made from PostGIS, one client, {len(cold_ms)} tiles): "
        f"p50 {percentile(cold_ms, 0.5):.1f} ms, p95 {percentile(cold_ms, 0.95):.1f} ms, "
        f"max {max(cold_ms):.1f} ms"
    )
    print(
        f"Features API pages of 100 objects (one client, {len(feature_ms)} pages): "
        f"p50 {percentile(feature_ms, 0.5):.1f} ms, p95 {percentile(feature_ms, 0.95):.1f} ms"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
