"""`cim analyse`: the planning analyses on a city's model (the same processes the service runs
at /processes), each run kept with its inputs and results (`cim analyse show ID`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from cim.errors import CimError, InvalidInput
from cim.settings import DatabaseSettings
from cli.common import command_engine, fail


def _run(process: str, inputs: dict[str, Any], as_json: bool) -> dict[str, Any]:
    from analysis import runs

    engine = command_engine(DatabaseSettings())
    try:
        run = runs.submit(engine, process, inputs, wait=True)
        done = runs.get_run(engine, run.id, with_results=True)
    except CimError as exc:
        fail(exc)
    if done.status != "successful" or done.results is None:
        fail(f"{process} failed (run {done.id}): {done.message}")
    if as_json:
        click.echo(orjson.dumps({"job": done.id, **done.results}, option=orjson.OPT_INDENT_2))
    return {"job": done.id, **done.results}


def _number(value: float | None, digits: int, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


@click.group()
def analyse() -> None:
    """Planning review on the model: parcel indicators (指标核算) and height limits (控高).

    Each run is kept with its inputs and results, as the service's /jobs are:
    `cim analyse show ID` prints one again.
    """


@analyse.command("indicators")
@click.option("--city", required=True, help="City code.")
@click.option("--parcel", "parcels", multiple=True, help="A parcel's code or id (default: all).")
@click.option(
    "--storey-height",
    type=float,
    default=3.0,
    show_default=True,
    help="Metres per storey, for buildings whose floors no attribute gives.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def indicators(city: str, parcels: tuple[str, ...], storey_height: float, as_json: bool) -> None:
    """Floor area, FAR (容积率), density (建筑密度) and heights per parcel, against its limits.

    \b
    Example:
      cim analyse indicators --city 370100 --parcel A-01 --parcel A-02
    """
    inputs: dict[str, Any] = {"city": city, "storey_height": storey_height}
    if parcels:
        inputs["parcels"] = list(parcels)
    out = _run("parcel-indicators", inputs, as_json)
    if as_json:
        return
    click.echo(f"city {city}: {len(out['parcels'])} parcels (job {out['job']})")
    click.echo(
        f"{'parcel':<16} {'area m²':>12} {'bldgs':>5} {'floor m²':>12} {'FAR':>6} "
        f"{'limit':>6} {'density':>8} {'limit':>6} {'max h':>7} {'limit':>6}  checks"
    )
    for p in out["parcels"]:
        lim = p["limits"]
        bad = [k for k, v in p["checks"].items() if v == "exceeds"]
        click.echo(
            f"{(p['code'] or str(p['parcel']))[:16]:<16} {_number(p['area_m2'], 1):>12} "
            f"{p['buildings']:>5} {_number(p['floor_area_m2'], 1):>12} "
            f"{_number(p['far'], 2):>6} {_number(lim['far'], 2):>6} "
            f"{_number(p['density_percent'], 1, ' %'):>8} {_number(lim['density_percent'], 1):>6} "
            f"{_number(p['max_height_m'], 1):>7} {_number(lim['height_m'], 1):>6}  "
            + (click.style("exceeds " + ", ".join(bad), fg="red") if bad else "ok")
        )
    click.echo(f"rule: {out['rule']['floor_area']}")


@analyse.command("height-limits")
@click.option("--city", required=True, help="City code.")
@click.option("--parcel", "parcels", multiple=True, help="A parcel's code or id (default: all).")
@click.option(
    "--polygon",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A GeoJSON file (CRS84) with one Polygon or MultiPolygon: check against --height "
    "there instead of the parcels' limits.",
)
@click.option("--height", type=float, help="The limit inside --polygon, in metres.")
@click.option(
    "--reference",
    type=click.Choice(["ground", "ellipsoid"]),
    default="ground",
    show_default=True,
    help="ground: heights above the ground; ellipsoid: elevations on the WGS 84 ellipsoid.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def height_limits(
    city: str,
    parcels: tuple[str, ...],
    polygon: Path | None,
    height: float | None,
    reference: str,
    as_json: bool,
) -> None:
    """Every building above its height limit (控高), and by how much.

    \b
    Examples:
      cim analyse height-limits --city 370100
      cim analyse height-limits --city 370100 --polygon airport.geojson --height 45
    """
    inputs: dict[str, Any] = {"city": city, "reference": reference}
    if parcels:
        inputs["parcels"] = list(parcels)
    if polygon is not None:
        try:
            doc = orjson.loads(polygon.read_bytes())
        except orjson.JSONDecodeError as exc:
            fail(InvalidInput(f"{polygon}: not JSON ({exc})"))
        if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
            features = doc.get("features") or []
            if len(features) != 1:
                fail(InvalidInput(f"{polygon}: give one polygon feature ({len(features)} found)"))
            doc = features[0]
        inputs["polygon"] = doc
    if height is not None:
        inputs["height"] = height
    out = _run("height-limits", inputs, as_json)
    if as_json:
        return
    s = out["summary"]
    click.echo(
        f"city {city}: {out['buildings_checked']} buildings checked against {out['limits']} "
        f"limits; {s['buildings_breaching']} above (job {out['job']})"
    )
    for b in out["breaches"]:
        where = b["parcel_code"] or b["parcel"] or "polygon"
        click.echo(
            f"  {b['building']}: {b['height_m']:.2f} m, limit {b['limit_m']:.2f} m in {where}: "
            + click.style(f"+{b['over_by_m']:.2f} m", fg="red")
        )


@analyse.command("show")
@click.argument("job")
def show(job: str) -> None:
    """Print a run again: its inputs, the model it read and its results, as JSON."""
    from analysis import runs

    try:
        run = runs.get_run(command_engine(DatabaseSettings()), job, with_results=True)
    except CimError as exc:
        fail(exc)
    click.echo(
        orjson.dumps(
            {
                "job": run.id,
                "process": run.process,
                "status": run.status,
                "message": run.message,
                "inputs": run.inputs,
                "created": run.created_at.isoformat(),
                "results": run.results,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
