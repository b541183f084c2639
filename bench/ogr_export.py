"""GDAL exporting a city from the Features API: a generated city of N buildings (only buildings,
so N objects; --all-layers adds its roads, trees, lights...), ingested, served by `cim serve`,
and copied whole by `ogr2ogr -f GPKG` (Debian's gdal-bin) end to end: from the first request to
the GeoPackage written. Prints the seconds and features a second, checks that every object is in
the file, and times the same pages fetched without GDAL (the service's share). Not a test: it
passes or fails on nothing.

    python bench/ogr_export.py --buildings 100000
    python bench/ogr_export.py --buildings 2000 --page-size 10   # GDAL 3.6's own page size

GDAL 3.6 (Debian 12) asks for pages of 10 unless told `-oo PAGE_SIZE=`; GDAL 3.8 and later ask
for 1,000. The default here is 1,000, as GDAL 3.8 does. With --all-layers the city mixes
geometry types, and GDAL takes the layer's type from its first page (it warns when a point comes
into a polygon layer); --type Building exports one object type, as a GIS user would.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402
from bench._hostile import serving  # noqa: E402
from cim.db.engine import make_engine  # noqa: E402
from demo.city import generate_city  # noqa: E402
from ingest.pipeline import ingest_files  # noqa: E402

CITY = "370100"


def _pages(base: str, page: int) -> tuple[int, float]:
    """Every item fetched page by page, following the next links, as GDAL does; how many and
    the seconds it took."""
    url: str | None = f"{base}/collections/{CITY}/items?limit={page}"
    count = 0
    started = time.perf_counter()
    with httpx.Client(timeout=300) as client:
        while url:
            body = client.get(url, headers={"Accept": "application/geo+json"}).json()
            count += len(body["features"])
            url = next((x["href"] for x in body["links"] if x["rel"] == "next"), None)
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000, help="ogr2ogr -oo PAGE_SIZE")
    parser.add_argument("--all-layers", action="store_true", help="not only the buildings")
    parser.add_argument("--type", help="export one object type (the OAPIF URL's ?type=)")
    args = parser.parse_args()
    ogr2ogr = shutil.which("ogr2ogr")
    if ogr2ogr is None:
        sys.exit("ogr2ogr is missing: install Debian's gdal-bin (make setup does)")
    version = subprocess.run([ogr2ogr, "--version"], capture_output=True, text=True).stdout

    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        started = time.perf_counter()
        city = generate_city(
            Path(tmp) / "city.city.json",
            buildings=args.buildings,
            seed=5,
            only_buildings=not args.all_layers,
        )
        [report] = ingest_files(engine, [city.path], CITY, city_name_zh="济南市")
        objects = report.object_count
        print(
            f"{objects:,} objects generated and ingested in {time.perf_counter() - started:.0f} s"
        )

        with serving(url, 1) as (base, _):
            source = f"OAPIF:{base}/collections/{CITY}"
            if args.type:
                source += f"?type={args.type}"
            out = Path(tmp) / "export.gpkg"
            command = [
                ogr2ogr,
                "-f",
                "GPKG",
                str(out),
                source,
                "-oo",
                f"PAGE_SIZE={args.page_size}",
            ]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                sys.exit(f"ogr2ogr failed: {done.stderr}")
            with sqlite3.connect(out) as db:
                [(layer, geometry, z)] = db.execute(
                    "SELECT table_name, geometry_type_name, z FROM gpkg_geometry_columns"
                ).fetchall()
                written = db.execute(f'SELECT count(*) FROM "{layer}"').fetchone()[0]  # noqa: S608
                columns = db.execute(f'PRAGMA table_info("{layer}")').fetchall()
            fetched, alone = _pages(base, args.page_size)

    expected = objects if not args.type else written
    pages = math.ceil(written / args.page_size)
    print(f"{version.strip()}; page size {args.page_size}, {pages} pages")
    print(
        f"ogr2ogr end to end: {written:,} features in {elapsed:.1f} s = "
        f"{written / elapsed:,.0f} features/s"
    )
    print(f"  layer {layer}: {geometry}{'Z' if z == 1 else ''}, {len(columns)} columns:")
    print("  " + ", ".join(f"{c[1]} {c[2]}" for c in columns))
    print(
        f"the same pages without GDAL: {fetched:,} features in {alone:.1f} s = "
        f"{fetched / alone:,.0f} features/s"
    )
    if written != expected:
        print(f"MISSING: {expected - written:,} of {expected:,} objects are not in the file")
    if done.stderr.strip():
        print("ogr2ogr said:", done.stderr.strip()[:2000])


if __name__ == "__main__":
    main()
