"""The `cim` command line. It only parses and dispatches; the work is in the Python API.

Commands import `ingest` and `api` lazily, inside the command that needs them, so that the core
package stays free of them at import time.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from cim.errors import CimError, InvalidInput
from cim.settings import ApiSettings, DatabaseSettings, IngestSettings
from cli.common import command_engine as _engine
from cli.common import fail as _fail

DEMO_CITY = "370100"
DEMO_NAMES = ("济南市（示例）", "Jinan (demo)")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cim")
def main() -> None:
    """CIM — a City Information Model service.

    \b
    Typical session:
      cim db start                         start the embedded PostGIS (or set CIM_DATABASE_URL)
      cim db upgrade                       create or migrate the schema
      cim ingest city.json --city 370100   load a CityJSON file into a city
      cim serve                            OGC API Features on http://127.0.0.1:8000
    """


# ---------------------------------------------------------------- db
@main.group()
def db() -> None:
    """The database: the embedded cluster, or the server named by CIM_DATABASE_URL."""


def _cluster_or_none(settings: DatabaseSettings) -> Any:
    from cim.db.engine import local_cluster

    if not settings.embedded:
        click.echo("CIM_DATABASE_URL is set: using that server, no embedded cluster.")
        return None
    return local_cluster(settings)


@db.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL + PostGIS (creating it on first use)."""
    settings = DatabaseSettings()
    try:
        cluster = _cluster_or_none(settings)
        if cluster is not None:
            cluster.start()
            click.echo(
                f"embedded database running on 127.0.0.1:{cluster.port} (data in {cluster.root})"
            )
    except CimError as exc:
        _fail(exc)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded database."""
    cluster = _cluster_or_none(DatabaseSettings())
    if cluster is not None:
        try:
            cluster.stop()
        except CimError as exc:
            _fail(exc)
        click.echo("embedded database stopped")


@db.command("status")
def db_status() -> None:
    """Say whether the database answers and which schema revision it has."""
    from sqlalchemy.exc import OperationalError

    from cim.db.engine import current_revision, head_revision

    settings = DatabaseSettings()
    try:
        cluster = _cluster_or_none(settings)
        if cluster is not None and not cluster.running():
            click.echo(f"embedded database: stopped (data in {cluster.root})")
            sys.exit(1)
        engine = _engine(settings)
        revision = current_revision(engine)
    except (CimError, OperationalError) as exc:
        click.secho(f"database unreachable: {exc}", fg="red", err=True)
        sys.exit(1)
    state = (
        "current"
        if revision == head_revision()
        else f"needs `cim db upgrade` (head {head_revision()})"
    )
    click.echo(f"database: running; schema revision {revision or 'none'} ({state})")


@db.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the database (it contains the password)."""
    from cim.db.engine import database_url

    try:
        click.echo(database_url(DatabaseSettings()))
    except CimError as exc:
        _fail(exc)


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or migrate it to the newest revision."""
    from cim.db.engine import upgrade

    try:
        revision = upgrade(_engine(DatabaseSettings()))
    except CimError as exc:
        _fail(exc)
    click.echo(f"schema at revision {revision}")


@db.command("dump")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def db_dump(file: Path) -> None:
    """Write the whole database (cities, datasets, textures, grading rounds, audit log) to FILE,
    in pg_dump's custom format. The file appears only once complete.

    \b
    Example:
      cim db dump cim-2026-11-29.dump
    """
    from cim.db.backup import dump
    from cim.db.engine import database_url

    try:
        size = dump(database_url(DatabaseSettings()), file)
    except CimError as exc:
        _fail(exc)
    click.echo(f"database written to {file} ({size / 1e6:.1f} MB)")


@db.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace the database's contents without asking.")
def db_restore(file: Path, yes: bool) -> None:
    """Replace the database's contents by a dump from `cim db dump`, in one transaction (all of
    it lands, or nothing changes). Restore into a database where `cim db upgrade` has run: the
    PostGIS extension is left as it is.

    \b
    Example:
      cim db restore cim-2026-11-29.dump --yes
    """
    from cim.db.backup import restore
    from cim.db.engine import database_url

    if not yes:
        click.confirm(f"Replace everything in the database by {file}?", abort=True)
    try:
        restore(database_url(DatabaseSettings()), file)
    except CimError as exc:
        _fail(exc)
    click.echo(f"database restored from {file}")


# ---------------------------------------------------------------- demo
@main.group()
def demo() -> None:
    """The synthetic demo city (Jinan area, EPSG:4548) that CIM generates itself."""


@demo.command("generate")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--buildings", default=3000, show_default=True, help="Number of buildings.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same city.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cityjson", "cityjsonseq", "citygml"]),
    default="cityjson",
    show_default=True,
)
def demo_generate(out: Path, buildings: int, seed: int, fmt: str) -> None:
    """Write a synthetic city as CityJSON 2.0 (or CityJSONSeq, or CityGML 2.0) to OUT."""
    from tqdm import tqdm

    from demo.city import generate_city

    with tqdm(total=buildings, unit="bldg", disable=not sys.stderr.isatty()) as bar:
        summary = generate_city(out, buildings=buildings, seed=seed, fmt=fmt, progress=bar.update)
    click.echo(f"wrote {summary.total} city objects ({summary.counts}) to {summary.path}")


@demo.command("load")
@click.option("--buildings", default=3000, show_default=True)
@click.option("--seed", default=42, show_default=True)
def demo_load(buildings: int, seed: int) -> None:
    """Generate the demo city (once) and ingest it as city 370100, unless already loaded; then
    create the demo grading round (Shandong's 16 cities, example values, Jinan's model
    indicators computed from the demo city) unless it exists."""
    from demo.city import generate_city
    from demo.round import DEMO_ROUND, load_demo_round
    from ingest.pipeline import file_checksum, ingest_files

    settings = DatabaseSettings()
    path = settings.data_dir / "demo" / f"demo-{buildings}-{seed}.city.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate_city(path, buildings=buildings, seed=seed)
    try:
        engine = _engine(settings)
        with engine.connect() as conn:
            from sqlalchemy import text

            row = conn.execute(
                text("SELECT checksum FROM dataset WHERE city_code = :c AND name = :n"),
                {"c": DEMO_CITY, "n": path.name},
            ).first()
        if row and row[0] == file_checksum(path):
            click.echo(f"demo city {DEMO_CITY} already loaded ({path.name})")
        else:
            reports = ingest_files(
                engine, [path], DEMO_CITY, city_name_zh=DEMO_NAMES[0], city_name_en=DEMO_NAMES[1]
            )
            click.echo(f"demo city {DEMO_CITY}: {reports[0].object_count} objects loaded")
        if load_demo_round(engine, DEMO_CITY):
            click.echo(f"demo grading round {DEMO_ROUND} created (see /grading/dashboard)")
    except CimError as exc:
        _fail(exc)


# ---------------------------------------------------------------- ingest
def _triple(text: str | None, option: str) -> tuple[float, float, float] | None:
    """Three comma-separated numbers, e.g. `4.859,45.76,170`."""
    if text is None:
        return None
    try:
        a, b, c = (float(x) for x in text.split(","))
    except ValueError:
        raise InvalidInput(
            f"{option} takes three numbers separated by commas, not {text!r}"
        ) from None
    return (a, b, c)


def _advance(bar: Any, n: int, total: int | None) -> None:
    if total is not None and bar.total != total:
        bar.total = total
        bar.refresh()
    bar.update(n)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--city", required=True, help="City code, e.g. the administrative code 370100.")
@click.option("--crs", help="CRS of files that declare none, e.g. EPSG:7415.")
@click.option("--name", help="Dataset name (default: the file name). Same name = replace.")
@click.option("--city-name", "city_name_zh", help="City name (Chinese), stored when new.")
@click.option("--city-name-en", help="City name (English), stored when new.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cityjson", "cityjsonseq", "citygml", "footprints", "mesh", "pointcloud"]),
    help="Force a format instead of detecting it from the content.",
)
@click.option("--height-attr", help="Footprints: the field with the building height (m).")
@click.option("--floors-attr", help="Footprints: the field with the number of floors.")
@click.option(
    "--storey-height",
    type=float,
    default=3.0,
    show_default=True,
    help="Footprints: metres per floor, with --floors-attr.",
)
@click.option(
    "--base-attr", help="Footprints: the field with the base elevation (default: z, or 0)."
)
@click.option("--layer", help="Footprints: the layer to read (default: the first).")
@click.option(
    "--origin",
    help="Mesh: lon,lat,height of its (0,0,0); its axes are then east, north, up in metres.",
)
@click.option("--offset", help="Mesh: x,y,z added to its coordinates, in the CRS of --crs.")
@click.option("--up", type=click.Choice(["y", "z"]), help="Mesh: the up axis (glTF: y, else z).")
@click.option(
    "--object-type",
    default="GenericCityObject",
    show_default=True,
    help="Mesh: the city-object type of its nodes, e.g. Building.",
)
@click.option(
    "--axis-order",
    type=click.Choice(["east-first", "north-first"]),
    help="GML: the order of the coordinates, when the file does not follow its CRS (by default "
    "CIM follows the CRS, or for northing-first CRSs decides from the data).",
)
@click.option(
    "--cell-size",
    type=float,
    default=50.0,
    show_default=True,
    help="Point clouds: points are grouped in square cells of this side (CRS units); three "
    "overview levels above them hold one point per 2 %, 8 % and 32 % of it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def ingest(
    paths: tuple[Path, ...],
    city: str,
    crs: str | None,
    name: str | None,
    city_name_zh: str | None,
    city_name_en: str | None,
    fmt: str | None,
    height_attr: str | None,
    floors_attr: str | None,
    storey_height: float,
    base_attr: str | None,
    layer: str | None,
    origin: str | None,
    offset: str | None,
    up: str | None,
    object_type: str,
    axis_order: str | None,
    cell_size: float,
    as_json: bool,
) -> None:
    """Load city-model files into a city: CityJSON 1.0/1.1/2.0, CityJSONSeq, CityGML 1.0/2.0/3.0,
    building footprints (GeoJSON, GeoPackage, Shapefile) extruded to LoD1 by their height,
    meshes (OBJ, glTF/GLB, PLY, STL) placed by --origin or --crs with --offset, and point clouds
    (LAS, LAZ) grouped in cells. Texture images the file names (in its folder) or holds are
    stored with it and drawn in the 3D Tiles.

    All files land together or none does. Re-ingesting a file (same dataset name) replaces it.

    \b
    Examples:
      cim ingest delft.city.json --city delft
      cim ingest tiles/*.city.jsonl --city 370100 --crs EPSG:4548 --json
      cim ingest LYON_1ER_BATI_2015.gml --city lyon --crs EPSG:3946
      cim ingest buildings.gpkg --city 310000 --height-attr height
      cim ingest bati.geojson --city lyon --floors-attr NB_ETAGES --storey-height 3
      cim ingest tower.obj --city lyon --origin 4.8590,45.7605,170 --object-type Building
      cim ingest site.glb --city 370100 --crs EPSG:4548 --offset 500000,4058000,30
    """
    from tqdm import tqdm

    from ingest.model import ReadOptions
    from ingest.pipeline import ingest_files

    try:
        options = ReadOptions(
            height_attr,
            floors_attr,
            storey_height,
            base_attr,
            layer,
            _triple(origin, "--origin"),
            _triple(offset, "--offset"),
            up,
            object_type,
            axis_order,
            cell_size,
        )
        engine = _engine(DatabaseSettings())
        with tqdm(unit="obj", disable=not sys.stderr.isatty() or as_json) as bar:
            reports = ingest_files(
                engine,
                list(paths),
                city,
                crs=crs,
                name=name,
                city_name_zh=city_name_zh,
                city_name_en=city_name_en,
                forced_format=fmt,
                settings=IngestSettings(),
                progress=lambda n, total: _advance(bar, n, total),
                options=options,
            )
    except CimError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.secho(
            "interrupted: nothing was written (the ingest is one transaction)", fg="red", err=True
        )
        sys.exit(130)
    if as_json:
        click.echo(orjson.dumps([r.to_dict() for r in reports], option=orjson.OPT_INDENT_2))
        return
    for r in reports:
        verb = "replaced" if r.replaced else "created"
        click.echo(
            f"{r.path}: {r.object_count} objects -> city {r.city}, dataset {r.dataset!r} "
            f"(id {r.dataset_id}, {verb}) in {r.seconds:.1f} s"
        )
        click.echo(
            f"  {r.format} {r.format_version}, {r.source_crs}; by type: "
            + ", ".join(f"{k} {v}" for k, v in sorted(r.counts_by_type.items()))
        )
        for w in r.warnings:
            click.secho(f"  warning: {w}", fg="yellow")


# ---------------------------------------------------------------- datasets
@main.group()
def datasets() -> None:
    """Datasets (ingested files) in the database."""


@datasets.command("list")
@click.option("--city", help="Only this city.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def datasets_list(city: str | None, as_json: bool) -> None:
    """List datasets: city, name, format, CRS, object count, warnings."""
    from ingest.datasets import list_datasets

    try:
        rows = list_datasets(_engine(DatabaseSettings()), city)
    except CimError as exc:
        _fail(exc)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
        return
    if not rows:
        click.echo("no datasets yet: load one with `cim ingest FILE --city CODE`")
    for r in rows:
        click.echo(
            f"{r['city_code']:<10} {r['name']:<40} {r['format']} {r['format_version']} "
            f"{r['source_crs']:<16} {r['object_count']:>9,} objects, "
            f"{len(r['warnings'])} warning(s), {r['imported_at']:%Y-%m-%d %H:%M}"
        )


@datasets.command("delete")
@click.argument("name")
@click.option("--city", required=True, help="City code.")
def datasets_delete(name: str, city: str) -> None:
    """Delete dataset NAME of a city, with all its objects."""
    from ingest.datasets import delete_dataset

    try:
        removed = delete_dataset(_engine(DatabaseSettings()), city, name)
    except CimError as exc:
        _fail(exc)
    click.echo(f"deleted dataset {name!r} of city {city} ({removed} objects)")


# ---------------------------------------------------------------- tiles
@main.group()
def tiles() -> None:
    """3D Tiles of a city: fill the cache, or export static files for a CDN."""


def _tile_bar(label: str) -> Any:
    from tqdm import tqdm

    return tqdm(unit="tile", desc=label, disable=not sys.stderr.isatty())


@tiles.command("seed")
@click.option("--city", required=True, help="City code.")
def tiles_seed(city: str) -> None:
    """Make every tile of a city now, so that no viewer waits for one."""
    from tiles.service import seed

    with _tile_bar("seeding") as bar:
        try:
            count = seed(  # one process per CPU
                _engine(DatabaseSettings()), city, lambda n, total: _advance(bar, 1, total)
            )
        except CimError as exc:
            _fail(exc)
    click.echo(f"city {city}: {count} tiles ready")


@tiles.command("export")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--city", required=True, help="City code.")
@click.option(
    "--version",
    "version",
    type=click.Choice(["1.1", "1.0"]),
    default="1.1",
    show_default=True,
    help="3D Tiles 1.1 (GLB) or 1.0 (B3DM, for QGIS and engines).",
)
def tiles_export(outdir: Path, city: str, version: str) -> None:
    """Write a city's tileset to OUTDIR as static files (tileset.json, tiles/) for a CDN."""
    from tiles.service import export, format_of

    with _tile_bar("exporting") as bar:
        try:
            count = export(
                _engine(DatabaseSettings()),
                city,
                outdir,
                lambda n, total: _advance(bar, 1, total),
                format_of(version),
            )
        except CimError as exc:
            _fail(exc)
    click.echo(f"city {city}: {count} tiles written to {outdir / 'tileset.json'}")


# ---------------------------------------------------------------- serve
@main.command()
@click.option("--host", default=None, help="Interface (default 127.0.0.1, CIM_API_HOST).")
@click.option("--port", default=None, type=int, help="Port (default 8000, CIM_API_PORT).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (e.g. the number of CPUs); each keeps its own tile memory.",
)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve OGC API Features (and the web pages) over HTTP."""
    import uvicorn

    from api.app import create_app

    api_settings = ApiSettings()
    try:
        app = create_app(DatabaseSettings(), api_settings)
    except CimError as exc:
        _fail(exc)
    # one JSON line per request from the service itself (cim.access); uvicorn's own access log
    # would repeat it with the query string
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ["CIM_SERVE_LOG"] = "1"  # worker processes set up the same logging
    uvicorn.run(
        app if workers == 1 else "api.app:create_app",  # workers import the app themselves
        factory=workers > 1,
        workers=workers,
        host=host or api_settings.host,
        port=port or api_settings.port,
        log_level="info",
        access_log=False,
    )


from cli.grade import grade  # noqa: E402 (registered last, like a plug-in)

main.add_command(grade)

if __name__ == "__main__":
    main()
