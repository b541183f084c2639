"""`cim grade template`, `cim grade values` and `cim grade compute-cim-indicators`: indicator
values in and out, and the ones the city model proves."""

from __future__ import annotations

from pathlib import Path

import click

from cim.errors import CimError
from cli.common import command_engine, fail, grade_actor, print_json, read_file


@click.command("template")
@click.argument("round_id")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def template(round_id: str, out: Path) -> None:
    """Write the round's value template (.csv or .xlsx), with the values entered so far.

    Fill in `value` (and `source`, `link`, `note`, `evidence_file`: a path relative to the
    template), then `cim grade values import`.
    """
    from grading.templates import round_template, template_bytes

    try:
        rows = round_template(command_engine(), round_id)
        out.write_bytes(template_bytes(rows, str(out)))
    except CimError as exc:
        fail(exc)
    click.echo(f"{out}: {len(rows)} rows ({len({r['city_code'] for r in rows})} cities)")


@click.group("values")
def grade_values() -> None:
    """Indicator values of a round."""


@grade_values.command("import")
@click.argument("round_id")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reason", help="Why the values change (kept in each value's history).")
def values_import(round_id: str, file: Path, reason: str | None) -> None:
    """Import a filled template (.csv or .xlsx): all rows or none; empty values are skipped.

    An empty source, link, note or evidence cell keeps what the value already has.
    """
    from grading.templates import import_values

    try:
        content = read_file(file)
        done = import_values(
            command_engine(),
            grade_actor(),
            round_id,
            content,
            str(file),
            folder=file.parent,
            reason=reason,
        )
    except CimError as exc:
        fail(exc)
    click.echo(
        f"{file}: {done.read} values read ({done.changed} changed, {done.empty} rows left "
        f"empty), {done.evidence} evidence files stored"
    )


@grade_values.command("history")
@click.argument("round_id")
@click.option("--city", required=True, help="City code.")
@click.option("--indicator", required=True, help="Indicator id.")
def values_history(round_id: str, city: str, indicator: str) -> None:
    """Print every change of one value as JSON: when, who, old -> new, why."""
    from grading.values import history

    try:
        print_json(history(command_engine(), round_id, city, indicator))
    except CimError as exc:
        fail(exc)


@grade_values.command("export")
@click.argument("round_id")
def values_export(round_id: str) -> None:
    """Print the round's values with their source and evidence as JSON."""
    from grading.values import entered

    try:
        print_json(entered(command_engine(), round_id))
    except CimError as exc:
        fail(exc)


@click.command("compute-cim-indicators")
@click.argument("round_id")
@click.option("--city", required=True, help="City code in the round.")
@click.option("--model-city", help="City code of its model in CIM (default: the same code).")
@click.option(
    "--params",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML/JSON parameters: radii, cell size, which attributes mark stations, cameras...",
)
@click.option(
    "--only",
    multiple=True,
    metavar="INDICATOR",
    help="Compute only this indicator (its id, or its CIM name such as lod2_share); repeatable.",
)
def compute_cim(
    round_id: str,
    city: str,
    model_city: str | None,
    params: Path | None,
    only: tuple[str, ...],
) -> None:
    """Compute the indicators the city model proves and enter them with their query as evidence.

    The catalogue's indicators marked `computed_from_cim` are filled, as the city's computed
    values (next to the values it reported, never over them): 3D model coverage, LoD2 share, 5G
    density and building coverage, camera coverage, smart street lights, IoT node density, and
    "CIM platform in place".

    \b
    What they need first:
      coverage and densities   the city's declared area:  cim grade area declare
      CIM platform in place    its function groups:       cim grade platform declare
    """
    from grading import jobs
    from grading.catalogue import parse_model, read_text
    from grading.cim_indicators import Parameters

    def step(name: str, done: int, of: int) -> None:
        click.echo(f"[{done + 1 if done < of else of}/{of}] {name}", err=True)

    try:
        p = parse_model(Parameters, read_text(params), str(params)) if params else Parameters()
        job = jobs.start(
            command_engine(),
            grade_actor(),
            round_id,
            city,
            model_city,
            p,
            only,
            background=False,
            progress=step,
        )
    except CimError as exc:
        fail(exc)
    from grading.values import entered

    values = entered(command_engine(), round_id).get(city, {})
    for row in job.result or []:
        inputs = ", ".join(f"{k} {v}" for k, v in row["inputs"].items())
        value, unit = row["value"], row["unit"]
        click.echo(f"{row['indicator']:<22} {value!s:>10} {unit:<5} ({row['name']}: {inputs})")
        entry = values.get(row["indicator"]) or {}
        kept = entry if entry.get("computed") else entry.get("alternative") or {}
        area = ((kept.get("computed") or {}).get("parameters") or {}).get("area")
        if area:
            click.echo(f"{'':<22} over {area['name'] or area['kind']}: {area['area_km2']:,.2f} km²")


@click.command("choose")
@click.argument("round_id")
@click.option("--city", required=True, help="City code.")
@click.option("--indicator", required=True, help="Indicator id.")
@click.option(
    "--counts",
    type=click.Choice(["reported", "computed"]),
    required=True,
    help="Which value counts: the one the city reported, or the one computed from the model.",
)
@click.option("--reason", required=True, help="Why (kept in the audit log and the report).")
def choose_cmd(round_id: str, city: str, indicator: str, counts: str, reason: str) -> None:
    """Choose which of a city's two values of an indicator counts (reviewer or admin)."""
    from grading.values import choose

    try:
        changed = choose(command_engine(), grade_actor(), round_id, city, indicator, counts, reason)
    except CimError as exc:
        fail(exc)
    click.echo(
        f"city {city}, indicator {indicator}: the {counts} value counts"
        + ("" if changed else " (unchanged)")
    )


@click.command("exempt")
@click.argument("round_id")
@click.option("--city", required=True, help="City code.")
@click.option("--indicator", help="Indicator id (default: every indicator of the city).")
@click.option("--reason", required=True, help="Why the value may be missing (audited).")
def exempt_cmd(round_id: str, city: str, indicator: str | None, reason: str) -> None:
    """Record why a required value (or a whole city) may be missing when the round is
    submitted or made final (admin)."""
    from grading.exemptions import exempt

    try:
        exempt(command_engine(), grade_actor(), round_id, city, indicator, reason)
    except CimError as exc:
        fail(exc)
    click.echo(f"city {city}{', indicator ' + indicator if indicator else ''}: exempt ({reason})")
