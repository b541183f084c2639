"""`cim ingest` and `cim datasets`: files (and PostGIS tables) into a city, and the datasets
already there."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from cim.errors import CimError, InvalidInput
from cim.settings import DatabaseSettings, IngestSettings
from cli.common import advance, command_engine, fail

if TYPE_CHECKING:
    from ingest.pgsource import TableSource


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


class _Source(click.ParamType):
    """A file, or a PostGIS database in GDAL's form (`PG:...`), which stays text: a connection
    string is no path (a Path would fold the `//` of a URI)."""

    name = "FILE|PG:..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ingest.pgsource import is_table_source

        if isinstance(value, str) and is_table_source(value):
            return value
        return click.Path(path_type=Path, dir_okay=False).convert(value, param, ctx)


def _sources(
    paths: tuple[Path | str, ...], table_options: dict[str, Any]
) -> list[Path | TableSource]:
    """Files as they are, a `PG:` source as the table the options name.

    Raises:
        InvalidInput: table options without a `PG:` source, or several `PG:` sources.
        IngestError: a connection string or table name that cannot be read.
    """
    from ingest.pgsource import table_source

    databases = [p for p in paths if isinstance(p, str)]
    given = [f"--{k.replace('_', '-')}" for k, v in table_options.items() if v is not None]
    if len(databases) > 1:
        raise InvalidInput("give one PG: source per command; its --table names the table")
    if given and not databases:
        raise InvalidInput(f"{', '.join(given)} read a PostGIS table: give a PG: source")
    attributes = table_options.pop("attributes")
    if attributes is not None:
        attributes = tuple(a.strip() for a in attributes.split(",") if a.strip())
    return [
        table_source(p, attributes=attributes, **table_options) if isinstance(p, str) else p
        for p in paths
    ]


@click.command()
@click.argument("paths", nargs=-1, required=True, type=_Source())
@click.option("--city", required=True, help="City code, e.g. the administrative code 370100.")
@click.option(
    "--crs",
    help="CRS of files that declare none (or instead of theirs), e.g. EPSG:7415, "
    "EPSG:31468+5783 or urn:adv:crs:DE_DHDN_3GK4*DE_DHHN92_NH.",
)
@click.option(
    "--name", help="Dataset name (default: the file name, or schema.table). Same name = replace."
)
@click.option(
    "--scenario",
    help="A design scheme (方案) of the city, e.g. scheme-a: held beside the city, which does not "
    "change; its objects replace the city's of the same id in the scenario's view (analyses "
    "take scenario=). It must be in the city's CRS.",
)
@click.option("--city-name", "city_name_zh", help="City name (Chinese), stored when new.")
@click.option("--city-name-en", help="City name (English), stored when new.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cityjson", "cityjsonseq", "citygml", "footprints", "mesh", "pointcloud"]),
    help="Force a format instead of detecting it from the content.",
)
@click.option(
    "--height-attr",
    "--height-column",
    "height_attr",
    help="Footprints and 2D tables: the field or column with the building height (m).",
)
@click.option(
    "--floors-attr",
    "--floors-column",
    "floors_attr",
    help="Footprints and 2D tables: the field or column with the number of floors.",
)
@click.option(
    "--storey-height",
    type=float,
    default=3.0,
    show_default=True,
    help="Footprints and 2D tables: metres per floor, with --floors-attr.",
)
@click.option(
    "--base-attr",
    "--base-column",
    "base_attr",
    help="Footprints and 2D tables: the field or column with the base elevation (default: z, "
    "or 0).",
)
@click.option(
    "--layer", help="Footprints and planning layers: the layer to read (default: the first)."
)
@click.option(
    "--as",
    "kind",
    type=click.Choice(["objects", "parcels"]),
    help="What the features are: city objects (the default), or planning parcels (控规地块) "
    "with their limits. A layer named parcels, plots or 地块 is read as parcels unless "
    "--as objects says otherwise.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="KEY=NAME",
    help="Parcels: the field that holds a known value, e.g. --field height_limit=控高. Keys: "
    "code, land_use, height_limit (m above the ground), far_limit, density_limit (%), "
    "green_ratio (%). Left out: the usual names (e.g. 控高, 容积率, 建筑密度, 绿地率, 用地性质).",
)
@click.option(
    "--origin",
    help="Mesh: lon,lat,height of its (0,0,0); its axes are then east, north, up in metres.",
)
@click.option("--offset", help="Mesh: x,y,z added to its coordinates, in the CRS of --crs.")
@click.option("--up", type=click.Choice(["y", "z"]), help="Mesh: the up axis (glTF: y, else z).")
@click.option(
    "--object-type",
    help="Mesh and tables: the city-object type of their objects (default: GenericCityObject "
    "for a mesh's nodes, Building for a table's rows).",
)
@click.option(
    "--table",
    help="PG: source: the table or view to read, schema.table (schema default: public).",
)
@click.option(
    "--id-column",
    help="PG: source: the column of the object ids (default: the primary key, else id, gid, "
    "fid, ogc_fid or objectid).",
)
@click.option("--geometry-column", help="PG: source: the geometry column (default: the only one).")
@click.option(
    "--attributes",
    help="PG: source: the columns kept as attributes, comma-separated ('' for none; default: "
    "every column but the id and the geometries).",
)
@click.option(
    "--lod",
    help="PG: source: the LoD of its 3D geometries, e.g. 2.2 (default: none is claimed, so "
    "they do not count as LoD2 in grading).",
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
    paths: tuple[Path | str, ...],
    city: str,
    crs: str | None,
    name: str | None,
    scenario: str | None,
    city_name_zh: str | None,
    city_name_en: str | None,
    fmt: str | None,
    height_attr: str | None,
    floors_attr: str | None,
    storey_height: float,
    base_attr: str | None,
    layer: str | None,
    kind: str | None,
    fields: tuple[str, ...],
    origin: str | None,
    offset: str | None,
    up: str | None,
    object_type: str | None,
    table: str | None,
    id_column: str | None,
    geometry_column: str | None,
    attributes: str | None,
    lod: str | None,
    axis_order: str | None,
    cell_size: float,
    as_json: bool,
) -> None:
    """Load city-model files into a city: CityJSON 1.0/1.1/2.0, CityJSONSeq, CityGML 1.0/2.0/3.0,
    building footprints (GeoJSON, GeoPackage, Shapefile) extruded to LoD1 by their height,
    meshes (OBJ, glTF/GLB, PLY, STL) placed by --origin or --crs with --offset, and point clouds
    (LAS, LAZ) grouped in cells. Texture images the file names (in its folder) or holds are
    stored with it and drawn in the 3D Tiles.

    A PostGIS table is read in place from a GDAL-style PG: source and --table: 3D surfaces
    (MULTIPOLYGON Z, POLYHEDRALSURFACE Z, TIN Z) keep every vertex, walls included; 2D polygons
    are extruded by --height-column like footprints. The CRS is the column's SRID. A .sql dump
    is not read: load it with psql first.

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
      cim ingest "PG:host=localhost dbname=gis user=me" --table public.buildings --city delft
      cim ingest PG:postgresql://me@db/gis --table bag.pand --city 0503 --lod 2.2
      cim ingest plan.gpkg --city 370100 --layer parcels --field height_limit=控高
      cim ingest scheme-a.city.json --city 370100 --scenario scheme-a
    """
    from tqdm import tqdm

    if kind == "parcels" or (kind is None and _parcel_layer(paths, layer)):
        if scenario:
            fail(InvalidInput("a scenario is a design scheme of buildings; parcels are the city's"))
        _ingest_parcels(paths, city, crs, name, layer, fields, city_name_zh, city_name_en, as_json)
        return
    if fields:
        fail(InvalidInput("--field names the fields of a parcel layer: add --as parcels"))

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
            object_type or "GenericCityObject",
            axis_order,
            cell_size,
        )
        sources = _sources(
            paths,
            {
                "table": table,
                "id_column": id_column,
                "geometry_column": geometry_column,
                "attributes": attributes,
                "lod": lod,
                "object_type": object_type if any(isinstance(p, str) for p in paths) else None,
            },
        )
        engine = command_engine(DatabaseSettings())
        with tqdm(unit="obj", disable=not sys.stderr.isatty() or as_json) as bar:
            reports = ingest_files(
                engine,
                sources,
                city,
                crs=crs,
                name=name,
                city_name_zh=city_name_zh,
                city_name_en=city_name_en,
                forced_format=fmt,
                settings=IngestSettings(),
                progress=lambda n, total: advance(bar, n, total),
                options=options,
                scenario=scenario,
            )
    except CimError as exc:
        fail(exc)
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
        heights = r.transformation.get("heights", {})
        if heights:  # which height transformation, and how well it is known to fit
            acc = heights.get("accuracy_m")
            model = heights.get("model")
            click.echo(
                f"  heights: {heights['method']}"
                + (f" ({model})" if model else "")
                + (f", expected within {acc:g} m" if acc else "")
            )
        for w in r.warnings:
            click.secho(f"  warning: {w}", fg="yellow")


def _parcel_layer(paths: tuple[Path | str, ...], layer: str | None) -> bool:
    """Whether one vector file's layer is named as parcels."""
    from ingest.parcels import looks_like_parcels

    return (
        len(paths) == 1
        and isinstance(paths[0], Path)
        and paths[0].suffix.lower() in (".gpkg", ".shp", ".geojson", ".json", ".fgb")
        and looks_like_parcels(paths[0], layer)
    )


def _ingest_parcels(
    paths: tuple[Path | str, ...],
    city: str,
    crs: str | None,
    name: str | None,
    layer: str | None,
    fields: tuple[str, ...],
    city_name_zh: str | None,
    city_name_en: str | None,
    as_json: bool,
) -> None:
    from ingest.parcels import ingest_parcels, parse_field_options

    if len(paths) != 1 or not isinstance(paths[0], Path):
        fail(
            InvalidInput(
                "parcels are read from one file at a time (GeoJSON, GeoPackage, Shapefile)"
            )
        )
    try:
        report = ingest_parcels(
            command_engine(DatabaseSettings()),
            paths[0],
            city,
            crs=crs,
            name=name,
            layer=layer,
            fields=parse_field_options(fields),
            city_names=(city_name_zh, city_name_en),
        )
    except CimError as exc:
        fail(exc)
    if as_json:
        click.echo(orjson.dumps([report.to_dict()], option=orjson.OPT_INDENT_2))
        return
    verb = "replaced" if report.replaced else "created"
    click.echo(
        f"{report.path}: {report.parcel_count} parcels -> city {report.city}, dataset "
        f"{report.dataset!r} (id {report.dataset_id}, {verb}) in {report.seconds:.1f} s"
    )
    read = ", ".join(f"{k} from {v!r}" for k, v in report.fields.items() if v)
    click.echo(f"  layer {report.layer!r}, {report.source_crs}; " + (read or "no known fields"))
    for w in report.warnings:
        click.secho(f"  warning: {w}", fg="yellow")


@click.group()
def datasets() -> None:
    """Datasets (ingested files) in the database."""


@datasets.command("list")
@click.option("--city", help="Only this city.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def datasets_list(city: str | None, as_json: bool) -> None:
    """List datasets: city, name, format, CRS, object count, warnings."""
    from ingest.datasets import list_datasets

    try:
        rows = list_datasets(command_engine(DatabaseSettings()), city)
    except CimError as exc:
        fail(exc)
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
        removed = delete_dataset(command_engine(DatabaseSettings()), city, name)
    except CimError as exc:
        fail(exc)
    click.echo(f"deleted dataset {name!r} of city {city} ({removed} objects)")
