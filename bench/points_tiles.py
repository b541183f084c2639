"""Point-cloud tiles end to end, side by side in one run: a generated LAS file through `cim
ingest` and then `cim tiles seed` (every content of its implicit tileset made and kept: the
parts of over-full tiles and the tiles whose content is their own), against `py3dtiles
convert` of the same file. Each step is a fresh process; CIM and py3dtiles take turns in every
run, each starting from nothing (CIM's city emptied, py3dtiles' output removed, untimed);
medians are printed. Not a test: it passes or fails on nothing.

py3dtiles runs as its users run it by default, its tiles left in the file's CRS (the faster
way: the issue's figures were taken so); `--peer-srs-out 4978` has it make Earth-centred tiles
as CIM's are, which takes it several times longer.

    python bench/points_tiles.py --points 10000000 --runs 3
    CIM_BENCH_DATABASE_URL=... python bench/points_tiles.py   # a running cluster instead
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench.ingest import OUT, TIME  # noqa: E402
from bench.pointcloud import generate  # noqa: E402
from bench.tiles import PEER, PEER_VERSION, _timed  # noqa: E402

CITY = "pointbench"


def _made(url: str, city: str) -> tuple[int, int]:
    """How many contents the city's implicit tileset has, and their bytes as kept (untimed,
    after `cim tiles seed` made them all)."""
    from sqlalchemy import text

    from cim.db.engine import make_engine
    from tiles.availability import Availability
    from tiles.parts import CELL_FORMAT
    from tiles.service import TileService

    engine = make_engine(url)
    item = Availability(TileService(engine))._city(city)
    with engine.connect() as conn:
        size = conn.execute(
            text(
                "SELECT coalesce(sum(length(content)), 0) FROM tile_cache WHERE city_code = :c"
                " AND (format = :f OR (format = 'glb' AND (tile_level, tile_x, tile_y) IN"
                " (SELECT * FROM unnest(CAST(:l AS int[]), CAST(:x AS int[]), CAST(:y AS int[])))))"
            ),
            {
                "c": city,
                "f": CELL_FORMAT,
                "l": [k[0] for k in item.native],
                "x": [k[1] for k in item.native],
                "y": [k[2] for k in item.native],
            },
        ).scalar_one()
    engine.dispose()
    return len(item.parts) + len(item.native), int(size)


def _forget(url: str, city: str) -> None:
    """Start a run as py3dtiles starts its (its output directory removed, untimed): the city's
    kept contents and its datasets deleted and their space vacuumed, so that each run makes
    everything and the ingest replaces nothing; then a CHECKPOINT and a sync, so that neither
    side's timed run pays for writing back what the other's, or this, left in memory."""
    from sqlalchemy import text

    from cim.db.engine import make_engine
    from ingest.datasets import delete_dataset, list_datasets

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = :c"), {"c": city})
    for dataset in list_datasets(engine, city):
        delete_dataset(engine, city, dataset["name"])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM city_object, object_geometry, tile_cache"))
        # and what that wrote put on disk, so that the timed ingest does not pay for it
        conn.execute(text("CHECKPOINT"))
    engine.dispose()
    os.sync()


def _peer() -> Path:
    """py3dtiles in its own virtualenv under bench/out (as bench/tiles.py installs it)."""
    exe = PEER / "bin" / "py3dtiles"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER)], check=True)
        subprocess.run([str(PEER / "bin/pip"), "install", "-q", PEER_VERSION], check=True)
    return exe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-peer", action="store_true", help="skip py3dtiles")
    parser.add_argument("--peer-srs-out", help="py3dtiles' --srs_out (4978: Earth-centred)")
    args = parser.parse_args()
    if not Path(TIME).exists():
        sys.exit("needs /usr/bin/time (Debian package 'time') to measure peak memory")
    OUT.mkdir(exist_ok=True)
    las = OUT / f"scale-{args.points}-{args.seed}.las"  # the file bench/scale.py uses
    if not las.exists():
        generate(las, args.points, args.seed)
    peer = None if args.no_peer else _peer()
    cim = str(Path(sys.executable).with_name("cim"))
    out = OUT / "py3dtiles-points"
    rows: dict[str, list[float]] = {k: [] for k in ("ingest", "contents", "cim", "peer")}
    peaks: dict[str, list[float]] = {k: [] for k in ("ingest", "contents", "peer")}
    count = size = 0
    with bench_database() as url:
        env = {**os.environ, "CIM_DATABASE_URL": url}
        for run in range(1, args.runs + 1):
            _forget(url, CITY)
            ingest_s, ingest_mb, _ = _timed([cim, "ingest", str(las), "--city", CITY], env)
            contents_s, contents_mb, _ = _timed([cim, "tiles", "seed", "--city", CITY], env)
            count, size = _made(url, CITY)
            rows["ingest"].append(ingest_s)
            rows["contents"].append(contents_s)
            rows["cim"].append(ingest_s + contents_s)
            peaks["ingest"].append(ingest_mb)
            peaks["contents"].append(contents_mb)
            line = f"run {run}: CIM {ingest_s:.1f} + {contents_s:.1f} s"
            if peer is not None:
                shutil.rmtree(out, ignore_errors=True)
                os.sync()  # what CIM's run wrote on disk before py3dtiles starts, as before CIM's
                command = [str(peer), "convert", str(las), "--out", str(out), "--overwrite"]
                if args.peer_srs_out:
                    command += ["--srs_out", args.peer_srs_out]
                peer_s, peer_mb, _ = _timed(command, env)
                rows["peer"].append(peer_s)
                peaks["peer"].append(peer_mb)
                line += f", py3dtiles convert {peer_s:.1f} s"
            print(line, flush=True)
    median = {k: statistics.median(v) for k, v in rows.items() if v}
    print(
        f"\n{args.points:,} LAS points ({las.stat().st_size / 1e6:.0f} MB) over 1 km², median of "
        f"{args.runs} runs, {os.cpu_count()} CPUs"
    )
    print(f"{'':<46}{'seconds':>9}{'peak MB':>9}")
    print(f"{'cim ingest':<46}{median['ingest']:>9.1f}{max(peaks['ingest']):>9.0f}")
    label = f"CIM: {count} implicit contents, {size / 1e6:.0f} MB"
    print(f"{label:<46}{median['contents']:>9.1f}{max(peaks['contents']):>9.0f}")
    print(f"{'CIM end to end':<46}{median['cim']:>9.1f}")
    if "peer" in median:
        tiles = sum(1 for p in out.rglob("*") if p.suffix in (".pnts", ".glb"))
        srs = f", --srs_out {args.peer_srs_out}" if args.peer_srs_out else ""
        peer_label = f"py3dtiles convert ({tiles} tiles{srs})"
        print(f"{peer_label:<46}{median['peer']:>9.1f}{max(peaks['peer']):>9.0f}")
        print(f"\nCIM is {median['peer'] / median['cim']:.1f}x as fast end to end")


if __name__ == "__main__":
    main()
