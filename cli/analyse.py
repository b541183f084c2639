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
    """Planning review on the model: parcel indicators (指标核算), height limits (控高) and
    sunlight hours (日照分析).

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


def _surface(path: Path) -> Any:
    """A limit surface from a GeoJSON file: a geometry, a feature, or a FeatureCollection whose
    polygons are taken together as one MultiPolygon."""
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        fail(InvalidInput(f"{path}: not JSON ({exc})"))
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        return doc
    polygons: list[Any] = []
    for n, feature in enumerate(doc.get("features") or [], 1):
        geometry = (feature or {}).get("geometry") or {}
        if geometry.get("type") == "Polygon":
            polygons.append(geometry.get("coordinates"))
        elif geometry.get("type") == "MultiPolygon":
            polygons.extend(geometry.get("coordinates") or [])
        else:
            fail(InvalidInput(f"{path}: feature {n} is not a Polygon or MultiPolygon"))
    if not polygons:
        fail(InvalidInput(f"{path}: no polygon in it"))
    return {"type": "MultiPolygon", "coordinates": polygons}


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
    "--surface",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A GeoJSON file (CRS84) of a limit surface (净空面): polygons whose positions carry "
    "their limit as a third number, each a plane (a TIN as triangles; a FeatureCollection's "
    "polygons are taken together). A building's limit is the surface's lowest over it.",
)
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
    surface: Path | None,
    reference: str,
    as_json: bool,
) -> None:
    """Every building above its height limit (控高), and by how much.

    \b
    Examples:
      cim analyse height-limits --city 370100
      cim analyse height-limits --city 370100 --polygon airport.geojson --height 45
      cim analyse height-limits --city 370100 --surface clearance.geojson --reference ellipsoid
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
    if surface is not None:
        inputs["surface"] = _surface(surface)
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
        where = b["parcel_code"] or b["parcel"] or ("surface" if surface else "polygon")
        click.echo(
            f"  {b['building']}: {b['height_m']:.2f} m, limit {b['limit_m']:.2f} m in {where}: "
            + click.style(f"+{b['over_by_m']:.2f} m", fg="red")
        )


@analyse.command("sunlight")
@click.option("--city", required=True, help="City code.")
@click.option(
    "--building", "buildings", multiple=True, help="A building whose windows are checked."
)
@click.option(
    "--points",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON file of points of their own: [{lon, lat, height, facing}, ...] (height on the "
    "ellipsoid, facing: the azimuth the window faces).",
)
@click.option("--date", "day", default=None, help="大寒 (default), 冬至, or YYYY-MM-DD.")
@click.option("--year", type=int, help="The year of the standard day (default: this year).")
@click.option(
    "--window", help="START-END in true solar time, e.g. 08:00-16:00 (default: the day's)."
)
@click.option("--step", type=float, help="Minutes between samples (default 1).")
@click.option("--climate-zone", help="I to VII (GB 50176; default II, e.g. Jinan).")
@click.option("--small-city", is_flag=True, help="A city under 500,000 urban residents.")
@click.option("--min-hours", type=float, help="Hours a window needs (default: the standard's).")
@click.option(
    "--continuous", is_flag=True, help="Count the longest spell only (连续), not the sum."
)
@click.option("--min-spell", type=float, help="Spells shorter than this many minutes do not count.")
@click.option("--sill-height", type=float, help="Window sill above each floor, m (default 0.9).")
@click.option("--spacing", type=float, help="Metres between points along a facade (default 3).")
@click.option("--all-facades", is_flag=True, help="Also facades the sun never faces.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def sunlight(
    city: str,
    buildings: tuple[str, ...],
    points: Path | None,
    day: str | None,
    year: int | None,
    window: str | None,
    step: float | None,
    climate_zone: str | None,
    small_city: bool,
    min_hours: float | None,
    continuous: bool,
    min_spell: float | None,
    sill_height: float | None,
    spacing: float | None,
    all_facades: bool,
    as_json: bool,
) -> None:
    """Sunlight hours (日照分析) at the windows of buildings, or at points, against every object
    around them, with pass or fail against GB 50180-2018 Table 4.0.9 or a local rule.

    \b
    Examples:
      cim analyse sunlight --city 370100 --building BLDG_000123
      cim analyse sunlight --city 370100 --building B1 --date 冬至 --min-hours 1
      cim analyse sunlight --city 370100 --points windows.json --continuous --min-spell 5
    """
    inputs: dict[str, Any] = {"city": city, "large_city": not small_city}
    if buildings:
        inputs["buildings"] = list(buildings)
    if points is not None:
        try:
            inputs["points"] = orjson.loads(points.read_bytes())
        except orjson.JSONDecodeError as exc:
            fail(InvalidInput(f"{points}: not JSON ({exc})"))
    if window is not None:
        inputs["window"] = window.split("-", 1)
    if continuous:
        inputs["accumulate"] = "continuous"
    if all_facades:
        inputs["facades"] = "all"
    given = {
        "date": day, "year": year, "step_minutes": step, "climate_zone": climate_zone,
        "min_hours": min_hours, "min_spell_minutes": min_spell, "sill_height": sill_height,
        "spacing": spacing,
    }  # fmt: skip
    inputs.update({k: v for k, v in given.items() if v is not None})
    out = _run("sunlight", inputs, as_json)
    if as_json:
        return
    s = out["summary"]
    click.echo(
        f"{out['date']} ({out['day'] or 'date given'}), {out['window'][0]}-{out['window'][1]} "
        f"true solar time, every {out['step_minutes']:g} min; {out['obstacles']['objects']} "
        f"objects around (job {out['job']})"
    )
    click.echo(f"rule: {out['rule']['text']} ({out['rule']['standard']})")
    click.echo(f"{s['points']} points: {s['passing']} pass, {s['failing']} fail")
    for p in out["points"]:
        if not p["passes"]:
            where = (
                f"{p['building']} facade {p['facade']} ({p['facade_azimuth']:.0f}°) floor "
                f"{p['floor']} #{p['index']}"
                if "building" in p
                else f"point {p['point']}"
            )
            spells = ", ".join(f"{a}-{b}" for a, b in p["intervals"]) or "no sun"
            click.echo(f"  {where}: {p['hours']:.2f} h ({spells})")


@analyse.command("compare")
@click.option("--city", required=True, help="City code.")
@click.option("--scenario", "scenarios", multiple=True, required=True, help="A design scheme.")
@click.option("--parcel", "parcels", multiple=True, help="A parcel (default: those built on).")
@click.option("--building", "buildings", multiple=True, help="A neighbour whose windows count.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def compare(
    city: str,
    scenarios: tuple[str, ...],
    parcels: tuple[str, ...],
    buildings: tuple[str, ...],
    as_json: bool,
) -> None:
    """Compare design schemes with the baseline (方案比选): the indicators of the parcels they
    build on, the height-limit breaches there, and the neighbours' windows that lose sunlight.

    \b
    Example:
      cim analyse compare --city 370100 --scenario scheme-a --scenario scheme-b
    """
    inputs: dict[str, Any] = {"city": city, "scenarios": list(scenarios)}
    if parcels:
        inputs["parcels"] = list(parcels)
    if buildings:
        inputs["buildings"] = list(buildings)
    out = _run("scheme-comparison", inputs, as_json)
    if as_json:
        return
    click.echo(
        f"city {city}: parcels {', '.join(out['parcels']) or '-'}; "
        f"{len(out['neighbours'])} neighbours (job {out['job']})"
    )
    for name in out["scenarios"]:
        found = out["indicators"].get(name, {}).get("parcels", [])
        fars = ", ".join(f"{p['code'] or p['parcel']} FAR {_number(p['far'], 2)}" for p in found)
        breaches = out["height_limits"].get(name, {}).get("summary", {})
        lit = out["sunlight"].get(name, {})
        losing = len(lit.get("windows_newly_failing", []))
        click.echo(
            f"  {name}: {fars or 'no parcel'}; "
            f"{breaches.get('buildings_breaching', 0)} buildings above their limit"
            + (f"; {losing} windows lose their sunlight" if name != "baseline" else "")
        )


@analyse.command("report")
@click.argument("job")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (default: cim-JOB-LANG.pdf; .html writes the page).",
)
def report(job: str, lang: str, out: Path | None) -> None:
    """Write a run's paper to file (PDF): inputs, the model read, the rule, the figures and a
    plan of the model, in Chinese or English.

    \b
    Example:
      cim analyse report 3f2a9c1e0b7d4e55 --lang en -o sunlight.pdf
    """
    from analysis.report import render_html, render_pdf

    engine = command_engine(DatabaseSettings())
    out = out or Path(f"cim-{job}-{lang}.pdf")
    try:
        if out.suffix.lower() in (".html", ".htm"):
            out.write_text(render_html(engine, job, lang), encoding="utf-8")
        else:
            out.write_bytes(render_pdf(engine, job, lang))
    except CimError as exc:
        fail(exc)
    click.echo(f"{out}: the paper of job {job} ({lang})")


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
