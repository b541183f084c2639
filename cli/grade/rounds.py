"""`cim grade round`: create, list, show, move along the lifecycle, verify, set the policy."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import click

from cim.errors import CimError, InvalidInput
from cli.common import command_engine, fail, grade_actor, print_json
from cli.grade.catalogues import catalogue_from


@click.group("round")
def grade_round() -> None:
    """Assessment rounds: create, list, show, move along draft → submitted → reviewed → final."""


def _cities(ref: str) -> list[Any]:
    """A named set of cities (`shandong`) or a CSV with code,name_zh,name_en[,previous_stars,
    previous_total]."""
    from grading.regions import REGIONS
    from grading.rounds import CityEntry

    if ref in REGIONS:
        return REGIONS[ref]
    path = Path(ref)
    if not path.is_file():
        raise InvalidInput(f"--cities {ref!r}: neither {', '.join(REGIONS)} nor a CSV file")
    out = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                out.append(
                    CityEntry(
                        row["code"].strip(),
                        row["name_zh"].strip(),
                        row["name_en"].strip(),
                        int(row["previous_stars"]) if row.get("previous_stars") else None,
                        float(row["previous_total"]) if row.get("previous_total") else None,
                    )
                )
            except (KeyError, ValueError, AttributeError) as exc:
                raise InvalidInput(
                    f"{path} row {n}: needs code, name_zh, name_en and optional "
                    f"previous_stars, previous_total ({exc})"
                ) from None
    return out


@grade_round.command("create")
@click.argument("round_id")
@click.option("--year", type=int, required=True, help="Assessment year.")
@click.option("--title", help="Title (default: from the catalogue and year).")
@click.option(
    "--catalogue", required=True, help="Catalogue file or built-in id (cim grade catalogue list)."
)
@click.option("--policy", required=True, help="Award policy file or built-in id.")
@click.option(
    "--cities",
    required=True,
    help="`shandong` (its 16 cities) or a CSV: code,name_zh,name_en,previous_stars,previous_total.",
)
def round_create(
    round_id: str, year: int, title: str | None, catalogue: str, policy: str, cities: str
) -> None:
    """Create a draft round; it keeps a copy of the catalogue and the policy."""
    from grading.awards import load_policy
    from grading.rounds import create_round

    try:
        cat = catalogue_from(catalogue)
        pol = load_policy(Path(policy))
        entries = _cities(cities)
        rnd = create_round(
            command_engine(),
            grade_actor(),
            round_id,
            title or f"{cat.title_zh} {year}",
            year,
            cat,
            pol,
            entries,
        )
    except CimError as exc:
        fail(exc)
    click.echo(
        f"round {rnd.id} ({rnd.status}): {len(entries)} cities, catalogue {cat.id} "
        f"{cat.version}, policy {pol.id}"
    )


@grade_round.command("list")
def round_list() -> None:
    """List the rounds."""
    from grading.rounds import list_rounds

    try:
        rounds = list_rounds(command_engine())
    except CimError as exc:
        fail(exc)
    for r in rounds:
        click.echo(
            f"{r.id:<16} {r.year}  {r.status:<9}  {r.catalogue.id} {r.catalogue.version}  "
            f"policy {r.policy.id}  {r.title}"
        )


@grade_round.command("show")
@click.argument("round_id")
def round_show(round_id: str) -> None:
    """A round's settings and how many values each city has."""
    from grading.rounds import cities, get_round
    from grading.values import entered as entered_values

    try:
        engine = command_engine()
        rnd = get_round(engine, round_id)
        entered = entered_values(engine, round_id)
        members = cities(engine, round_id)
    except CimError as exc:
        fail(exc)
    print_json(
        {
            **rnd.summary(),
            "cities": [
                {
                    "code": c.code,
                    "name_zh": c.name_zh,
                    "values": len(entered.get(c.code, {})),
                    "of": len(rnd.catalogue.indicators),
                }
                for c in members
            ],
        }
    )


@grade_round.command("status")
@click.argument("round_id")
@click.argument("to", type=click.Choice(["draft", "submitted", "reviewed", "final"]))
@click.option("--reason", required=True, help="Why (kept in the audit log).")
def round_status(round_id: str, to: str, reason: str) -> None:
    """Move a round: draft → submitted → reviewed → final (or back to draft for changes).

    Values, evidence and the policy change only in a draft. A final round is immutable; its
    results are frozen with their SHA-256 (`cim grade round verify` recomputes them).
    """
    from grading.rounds import move

    try:
        rnd = move(command_engine(), grade_actor(), round_id, to, reason)
    except CimError as exc:
        fail(exc)
    extra = f", results SHA-256 {rnd.results_sha256}" if rnd.results_sha256 else ""
    click.echo(f"round {rnd.id} is now {rnd.status}{extra}")


@grade_round.command("link")
@click.argument("round_id")
@click.option("--previous", metavar="ROUND", help="The final round of an earlier year.")
@click.option("--none", "unlink", is_flag=True, help="Remove the link.")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
def round_link(round_id: str, previous: str | None, unlink: bool, reason: str) -> None:
    """Link the previous round this one is compared with (admin, in a draft).

    `cim grade compare`, the report and the dashboard then show each city's rank, stars, score,
    award and area points then and now.
    """
    from grading.rounds import link_previous

    if unlink == bool(previous):
        fail("give --previous ROUND, or --none to remove the link")
    try:
        changed = link_previous(command_engine(), grade_actor(), round_id, previous, reason)
    except CimError as exc:
        fail(exc)
    what = f"compared with {previous}" if previous else "compared with no previous round"
    click.echo(f"round {round_id}: {what}{'' if changed else ' (unchanged)'}")


@grade_round.command("verify")
@click.argument("round_id")
def round_verify(round_id: str) -> None:
    """Recompute a final round from its stored values, catalogue and policy, and compare with
    the frozen results (exit code 1 when they differ)."""
    from grading.outcome import verify

    try:
        same, frozen, again = verify(command_engine(), round_id)
    except CimError as exc:
        fail(exc)
    if same:
        click.echo(f"round {round_id}: recomputed results are identical (SHA-256 {frozen})")
        return
    click.secho(
        f"round {round_id}: recomputed results differ: frozen {frozen}, recomputed {again}",
        fg="red",
        err=True,
    )
    raise SystemExit(1)


@grade_round.command("set-policy")
@click.argument("round_id")
@click.argument("policy")
def round_set_policy(round_id: str, policy: str) -> None:
    """Replace a round's award policy (only while the round is a draft)."""
    from grading.awards import load_policy
    from grading.rounds import set_policy

    try:
        set_policy(command_engine(), grade_actor(), round_id, load_policy(Path(policy)))
    except CimError as exc:
        fail(exc)
    click.echo(f"round {round_id}: policy set from {policy}")
