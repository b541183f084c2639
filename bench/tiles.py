"""3D Tiles side by side: CIM (live from PostGIS, cached) and `py3dtiles export` on the same
PostGIS data, a generated city of N LoD2 buildings.

Prints seeding throughput (buildings/s), bytes per building, peak memory, and tile request
latency (p50/p95; cold = first request, tile made from the database; warm = cached) for both.
py3dtiles is installed into its own virtualenv under bench/out (it is not a CIM dependency) and
gets the POLYHEDRALSURFACE Z table (EPSG:4978) its exporter needs. Not a test.

    python bench/tiles.py --buildings 100000
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench.ingest import OUT, TIME, _file  # noqa: E402
from cim.db.engine import make_engine  # noqa: E402
from tiles.service import content_keys  # noqa: E402
from tiles.tileset import content_uri  # noqa: E402

PEER = OUT / "py3dtiles-venv"
PEER_VERSION = "py3dtiles[postgres]==12.1.1"


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command under GNU time: seconds, peak RSS in MB, stdout."""
    t = time.perf_counter()
    r = subprocess.run([TIME, "-f", "%M", *cmd], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return elapsed, int(r.stderr.strip().splitlines()[-1]) / 1024, r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _latencies(base: str, uris: list[str], wire: list[int] | None = None) -> list[float]:
    """Milliseconds per request (gzip accepted, as browsers do); bytes on the wire into `wire`."""
    out = []
    with httpx.Client(timeout=60) as client:
        for uri in uris:
            t = time.perf_counter()
            r = client.get(f"{base}/{uri}")
            out.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            if wire is not None:
                wire.append(r.num_bytes_downloaded)
    return out


def _serve(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("server did not start")


def _cim(url: str, path: Path, buildings: int) -> dict[str, float]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "CIM_DATABASE_URL": url}
    subprocess.run(
        [str(bin_dir / "cim"), "ingest", str(path), "--city", "bench"],
        env=env,
        check=True,
        capture_output=True,
    )
    engine = make_engine(url)
    runs = []
    for _ in range(3):  # median of three seedings, each from an empty cache
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tile_cache"))
        runs.append(_timed([str(bin_dir / "cim"), "tiles", "seed", "--city", "bench"], env))
    seconds = statistics.median(r[0] for r in runs)
    peak = max(r[1] for r in runs)
    with engine.connect() as conn:
        size = conn.execute(text("SELECT sum(length(content)) FROM tile_cache")).scalar_one()
    port = _free_port()
    server = _serve([str(bin_dir / "cim"), "serve", "--port", str(port)], env, port)
    try:
        base = f"http://127.0.0.1:{port}/collections/bench/3dtiles"
        tileset = httpx.get(f"{base}/tileset.json", timeout=60).json()
        uris = [content_uri(k, "glb") for k in content_keys(tileset)]
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tile_cache"))
        cold = _latencies(base, uris)
        wire: list[int] = []
        warm = _latencies(base, uris, wire)
    finally:
        server.terminate()
        server.wait()
    engine.dispose()
    return {
        "seconds": seconds,
        "rate": buildings / seconds,
        "bytes": size / buildings,
        "peak": peak,
        "tiles": len(uris),
        "cold": _percentiles(cold),
        "warm": _percentiles(warm),
        "wire": sum(wire) / buildings,
    }


def _py3dtiles(url: str, buildings: int) -> dict[str, float]:
    if not (PEER / "bin" / "py3dtiles").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER)], check=True)
        subprocess.run([str(PEER / "bin/pip"), "install", "-q", PEER_VERSION], check=True)
    engine = make_engine(url)
    with engine.begin() as conn:  # the table py3dtiles' exporter reads
        conn.execute(text("DROP TABLE IF EXISTS py3dtiles_buildings"))
        conn.execute(
            text("""
            CREATE TABLE py3dtiles_buildings AS
            SELECT o.id, ST_GeomFromText(replace(ST_AsText(ST_Transform(g.geom, 4978)),
                                         'MULTIPOLYGON', 'POLYHEDRALSURFACE'), 4978) AS geom
            FROM city_object o JOIN object_geometry g
              ON g.city_code = o.city_code AND g.object_id = o.id AND g.idx = o.display_idx
            WHERE o.city_code = 'bench' AND o.type = 'Building'""")
        )
    engine.dispose()
    u = make_url(url)
    conninfo = (
        f"dbname={u.database} host={u.host} port={u.port} user={u.username} password={u.password}"
    )
    out = OUT / "py3dtiles-tiles"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    seconds, peak, _ = _timed(
        [
            str(PEER / "bin/py3dtiles"),
            "export",
            "-D",
            conninfo,
            "-t",
            "py3dtiles_buildings",
            "-c",
            "geom",
            "-i",
            "id",
            "-s",
            str(out),
        ],
        dict(os.environ),
    )
    files = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".b3dm", ".glb")]
    size = sum(p.stat().st_size for p in files)
    # serve its static output the same way CIM's is served, for warm latency
    port = _free_port()
    script = (
        "import sys,uvicorn;from fastapi import FastAPI;from fastapi.staticfiles import "
        "StaticFiles;a=FastAPI();a.mount('/',StaticFiles(directory=sys.argv[1]));"
        "uvicorn.run(a,port=int(sys.argv[2]),log_level='warning')"
    )
    server = _serve([sys.executable, "-c", script, str(out), str(port)], dict(os.environ), port)
    try:
        uris = [str(p.relative_to(out)) for p in files]
        _latencies(f"http://127.0.0.1:{port}", uris)  # first read: files into the OS cache
        wire: list[int] = []
        warm = _latencies(f"http://127.0.0.1:{port}", uris, wire)
    finally:
        server.terminate()
        server.wait()
    return {
        "seconds": seconds,
        "rate": buildings / seconds,
        "bytes": size / buildings,
        "peak": peak,
        "tiles": len(files),
        "warm": _percentiles(warm),
        "wire": sum(wire) / buildings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-peer", action="store_true", help="skip py3dtiles")
    args = parser.parse_args()
    if not Path(TIME).exists():
        sys.exit("needs /usr/bin/time (Debian package 'time') to measure peak memory")
    OUT.mkdir(exist_ok=True)
    path = _file(args.buildings, args.seed, True)
    with bench_database() as url:
        ours = _cim(url, path, args.buildings)
        print(f"cim: {ours}")
        peer = None if args.no_peer else _py3dtiles(url, args.buildings)
        print(f"py3dtiles: {peer}")
    print()
    print(f"3D Tiles of {args.buildings:,} LoD2 buildings ({path.name}), {os.cpu_count()} CPUs")
    print(f"{'':<22} {'CIM (1.1 GLB)':>16} {'py3dtiles export':>18}")

    def row(label: str, key: str, fmt: str) -> None:
        a = fmt.format(ours[key]) if key in ours else "-"
        b = fmt.format(peer[key]) if peer and key in peer else "-"
        print(f"{label:<22} {a:>16} {b:>18}")

    row("seeding, s (median)", "seconds", "{:,.1f}")
    row("buildings/s", "rate", "{:,.0f}")
    row("bytes/building", "bytes", "{:,.0f}")
    row("bytes/bldg on the wire", "wire", "{:,.0f}")
    row("peak memory, MB", "peak", "{:,.0f}")
    row("tiles", "tiles", "{:,}")
    for name in ("cold", "warm"):
        a = "{:.1f} / {:.1f}".format(*ours[name])
        b = "{:.1f} / {:.1f}".format(*peer[name]) if peer and name in peer else "-"
        print(f"{name + ' p50/p95, ms':<22} {a:>16} {b:>18}")
    if peer:
        print(
            f"\nseeding speed-up {ours['rate'] / peer['rate']:.1f}x, "
            f"size {ours['bytes'] / peer['bytes']:.2f}x of py3dtiles'"
        )


if __name__ == "__main__":
    main()
