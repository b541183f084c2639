"""`cim grade catalogue` and `cim grade policy`: the indicator catalogues and award policies,
built in or from files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cim.errors import CimError
from cli.common import fail, read_file


@click.group("catalogue")
def grade_catalogue() -> None:
    """Indicator catalogues: the built-in ones, their JSON Schema, and checking your own."""


@grade_catalogue.command("list")
def catalogue_list() -> None:
    """List the built-in catalogues."""
    from grading.catalogue import BUILT_IN, load_catalogue

    for path in sorted(BUILT_IN.glob("*.yaml")):
        cat = load_catalogue(path)
        provisional = sum(i.provenance.status == "provisional" for i in cat.indicators)
        click.echo(
            f"{cat.id:<20} {cat.title_zh}  ({len(cat.areas)} areas, "
            f"{len(cat.indicators)} indicators, {provisional} provisional)  {path}"
        )


@grade_catalogue.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def catalogue_validate(file: Path) -> None:
    """Check a catalogue file (YAML or JSON): structure, weights adding up, thresholds in order.

    Copy a built-in one (see `cim grade catalogue list`), edit it, and validate it here.
    """
    from grading.catalogue import load_catalogue

    try:
        cat = load_catalogue(file)
    except CimError as exc:
        fail(exc)
    provisional = [i.id for i in cat.indicators if i.provenance.status == "provisional"]
    click.echo(
        f"{file}: valid catalogue {cat.id} {cat.version}: {len(cat.areas)} areas, "
        f"{len(cat.indicators)} indicators"
    )
    if provisional:
        click.secho(
            f"  {len(provisional)} indicators have provisional numbers: " + ", ".join(provisional),
            fg="yellow",
        )


@grade_catalogue.command("import")
@click.argument("table", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id", "catalogue_id", required=True, help="Catalogue id, e.g. db37-3890.1-2020.")
@click.option("--version", "version", required=True, help="Its version, e.g. 2026-adopted.")
@click.option("--standard", required=True, help="The standard it implements.")
@click.option("--title-zh", required=True, help="Title in Chinese.")
@click.option("--title-en", required=True, help="Title in English.")
@click.option(
    "--stars",
    required=True,
    help="Total points for 1 to 5 stars, e.g. 40,55,65,78,90.",
)
@click.option("--scale", type=float, default=100, show_default=True, help="Points of a city.")
@click.option("--published", is_flag=True, help="The star rule is published (default: assumed).")
@click.option("--stars-source", default="the committee's star rule", help="Where it comes from.")
def catalogue_import(
    table: Path,
    out: Path,
    catalogue_id: str,
    version: str,
    standard: str,
    title_zh: str,
    title_en: str,
    stars: str,
    scale: float,
    published: bool,
    stars_source: str,
) -> None:
    """Read a committee's indicator table (.xlsx: area, indicator, unit, range, direction,
    weight, five level thresholds, bonus, veto; see grading/catalogue_table.py) into a
    validated catalogue file OUT. Every bad row is reported; nothing is written then."""
    from grading.catalogue_table import catalogue_from_table, catalogue_yaml

    try:
        points = [float(x) for x in stars.split(",")]
    except ValueError:
        fail(f"--stars takes five numbers separated by commas, not {stars!r}")
    if len(points) != 5:
        fail(f"--stars takes five numbers (1 to 5 stars), not {len(points)}")
    meta = {
        "id": catalogue_id,
        "version": version,
        "standard": standard,
        "title_zh": title_zh,
        "title_en": title_en,
        "scale": scale,
    }
    rule = {
        "thresholds": {level: p for level, p in enumerate(points, 1)},
        "provenance": {
            "status": "published" if published else "provisional",
            "source": stars_source,
        },
    }
    try:
        catalogue = catalogue_from_table(read_file(table), str(table), meta, rule)
    except CimError as exc:
        fail(exc)
    text = catalogue_yaml(catalogue)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
    click.echo(
        f"{out}: catalogue {catalogue.id} with {len(catalogue.areas)} areas and "
        f"{len(catalogue.indicators)} indicators (check it: cim grade catalogue validate {out})"
    )


@grade_catalogue.command("schema")
def catalogue_schema() -> None:
    """Print the JSON Schema of catalogue files."""
    from grading.catalogue import json_schema

    click.echo(json_schema())


def catalogue_from(ref: str) -> Any:
    """A catalogue file, or a built-in catalogue by id."""
    from grading.catalogue import built_in, load_catalogue

    path = Path(ref)
    return load_catalogue(path) if path.exists() else built_in(ref)


@click.group("policy")
def grade_policy() -> None:
    """Award policies: eligibility, cap, budget, amounts, step-up reward."""


@grade_policy.command("list")
def policy_list() -> None:
    """List the built-in policies (examples to copy and edit)."""
    from grading.awards import BUILT_IN_POLICIES, load_policy

    for path in sorted(BUILT_IN_POLICIES.glob("*.yaml")):
        p = load_policy(path)
        click.echo(
            f"{p.id:<20} {p.title}  (from {p.min_stars} stars, cap {p.cap_per_city:,.0f}, "
            f"budget {p.budget:,.0f}, {p.provenance.status})  {path}"
        )


@grade_policy.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def policy_validate(file: Path) -> None:
    """Check an award policy file (YAML or JSON)."""
    from grading.awards import load_policy

    try:
        p = load_policy(file)
    except CimError as exc:
        fail(exc)
    click.echo(f"{file}: valid policy {p.id}: budget {p.budget:,.0f}, method {p.method}")
