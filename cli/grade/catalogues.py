"""`cim grade catalogue` and `cim grade policy`: the indicator catalogues and award policies,
built in or from files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cim.errors import CimError
from cli.common import fail


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
