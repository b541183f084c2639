"""`cim grade`: smart-city star grading from the command line.

The command line holds the database credentials, so it acts as an admin (audited as
`cli:<user>`); people working through the web API use API keys (`cim grade keys create`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from cim.errors import CimError, InvalidInput
from cli.common import command_engine, fail

if TYPE_CHECKING:
    from grading.results import RoundResults

STARS = "★"


def _file_bytes(path: Path) -> bytes:
    """A file's content.

    Raises:
        InvalidInput: unreadable, naming the file.
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror or exc}") from None


def _json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str))


@click.group()
def grade() -> None:
    """Smart-city star grading (DB37/T 3890, GB/T 33356): catalogues, rounds, scores, awards.

    \b
    A round, start to finish:
      cim grade round create sd-2026 --year 2026 --catalogue db37-3890.1-2020 \\
            --policy shandong-example --cities shandong
      cim grade template sd-2026 values.xlsx           fill it in (evidence files beside it)
      cim grade values import sd-2026 values.xlsx
      cim grade compute-cim-indicators sd-2026 --city 370100
      cim grade score sd-2026 ; cim grade rank sd-2026 ; cim grade allocate sd-2026
      cim grade round status sd-2026 submitted|reviewed|final
      cim grade report sd-2026 report.pdf
    """


# ---------------------------------------------------------------- catalogues and policies
@grade.group("catalogue")
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


def _catalogue(ref: str) -> Any:
    """A catalogue file, or a built-in catalogue by id."""
    from grading.catalogue import built_in, load_catalogue

    path = Path(ref)
    return load_catalogue(path) if path.exists() else built_in(ref)


@grade.group("policy")
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


# ---------------------------------------------------------------- rounds
@grade.group("round")
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
    from grading.access import cli_actor
    from grading.awards import load_policy
    from grading.rounds import create_round

    try:
        cat = _catalogue(catalogue)
        pol = load_policy(Path(policy))
        entries = _cities(cities)
        rnd = create_round(
            command_engine(),
            cli_actor(),
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
    _json(
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
def round_status(round_id: str, to: str) -> None:
    """Move a round: draft → submitted → reviewed → final (or back to draft for changes).

    Values, evidence and the policy change only in a draft. A final round is immutable; its
    results are frozen with their SHA-256 (`cim grade round verify` recomputes them).
    """
    from grading.access import cli_actor
    from grading.rounds import move

    try:
        rnd = move(command_engine(), cli_actor(), round_id, to)
    except CimError as exc:
        fail(exc)
    extra = f", results SHA-256 {rnd.results_sha256}" if rnd.results_sha256 else ""
    click.echo(f"round {rnd.id} is now {rnd.status}{extra}")


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
    from grading.access import cli_actor
    from grading.awards import load_policy
    from grading.rounds import set_policy

    try:
        set_policy(command_engine(), cli_actor(), round_id, load_policy(Path(policy)))
    except CimError as exc:
        fail(exc)
    click.echo(f"round {round_id}: policy set from {policy}")


# ---------------------------------------------------------------- values
@grade.command("template")
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


@grade.group("values")
def grade_values() -> None:
    """Indicator values of a round."""


@grade_values.command("import")
@click.argument("round_id")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def values_import(round_id: str, file: Path) -> None:
    """Import a filled template (.csv or .xlsx): all rows or none; empty values are skipped."""
    from grading.access import cli_actor
    from grading.templates import import_values

    try:
        content = _file_bytes(file)
        done = import_values(
            command_engine(), cli_actor(), round_id, content, str(file), folder=file.parent
        )
    except CimError as exc:
        fail(exc)
    click.echo(
        f"{file}: {done.read} values read ({done.changed} changed, {done.empty} rows left "
        f"empty), {done.evidence} evidence files stored"
    )


@grade_values.command("export")
@click.argument("round_id")
def values_export(round_id: str) -> None:
    """Print the round's values with their source and evidence as JSON."""
    from grading.values import entered

    try:
        _json(entered(command_engine(), round_id))
    except CimError as exc:
        fail(exc)


@grade.command("compute-cim-indicators")
@click.argument("round_id")
@click.option("--city", required=True, help="City code in the round.")
@click.option("--model-city", help="City code of its model in CIM (default: the same code).")
@click.option(
    "--params",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML/JSON parameters: radii, cell size, which attributes mark stations, cameras...",
)
@click.option(
    "--built-up",
    type=click.Path(dir_okay=False, path_type=Path),
    help="GeoJSON (lon/lat) of the built-up area (default: the buildings' convex hull).",
)
def compute_cim(
    round_id: str,
    city: str,
    model_city: str | None,
    params: Path | None,
    built_up: Path | None,
) -> None:
    """Compute the indicators the city model proves and enter them with their query as evidence.

    The catalogue's indicators marked `computed_from_cim` are filled: 3D model coverage, LoD2
    share, 5G density and building coverage, camera coverage, smart street lights, IoT node
    density, CIM platform.
    """
    from grading.access import cli_actor
    from grading.catalogue import parse_model, read_text
    from grading.cim_indicators import Parameters
    from grading.values import enter_cim_indicators

    try:
        p = parse_model(Parameters, read_text(params), str(params)) if params else Parameters()
        if built_up:
            geo = orjson.loads(read_text(built_up))
            if geo.get("type") == "FeatureCollection":
                geo = geo["features"][0]["geometry"]
            elif geo.get("type") == "Feature":
                geo = geo["geometry"]
            p = p.model_copy(update={"built_up": geo})
        done = enter_cim_indicators(command_engine(), cli_actor(), round_id, city, model_city, p)
    except (orjson.JSONDecodeError, KeyError, IndexError, AttributeError) as exc:
        fail(f"{built_up}: not a GeoJSON geometry, feature or feature collection ({exc})")
    except CimError as exc:
        fail(exc)
    for ind_id, c in done:
        inputs = ", ".join(f"{k} {v}" for k, v in c.inputs.items())
        click.echo(f"{ind_id:<22} {c.value!s:>10} {c.unit:<5} ({c.name}: {inputs})")


# ---------------------------------------------------------------- results
def _results(
    round_id: str, policy: str | None = None, catalogue: str | None = None
) -> RoundResults:
    """The round's results; with a policy or catalogue file, the what-if (nothing stored
    changes). A command computes them once, so it keeps no cache."""
    from grading.awards import load_policy
    from grading.outcome import recompute, results

    try:
        if policy is None and catalogue is None:
            return results(command_engine(), round_id)
        return recompute(
            command_engine(),
            round_id,
            policy=load_policy(Path(policy)) if policy else None,
            catalogue=_catalogue(catalogue) if catalogue else None,
        )
    except CimError as exc:
        fail(exc)


@grade.command("score")
@click.argument("round_id")
@click.option("--city", help="Only this city, with every indicator's reason.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def score(round_id: str, city: str | None, as_json: bool) -> None:
    """Scores: per indicator (value → level → points, with the reason), per area, total, stars."""
    res = _results(round_id)
    rows = [c for c in res.cities if city is None or c.code == city]
    if city and not rows:
        fail(f"city {city} is not in round {round_id}")
    if as_json:
        _json([c.to_dict() for c in rows])
        return
    names = {i.id: i for i in res.catalogue.indicators}
    for c in sorted(rows, key=lambda c: c.code):
        click.echo(
            f"{c.code} {c.name_zh:<6} total {c.total:6.2f} + bonus {c.bonus:4.2f}  "
            f"{STARS * c.stars or '-':<5} {c.subtype or ''}"
        )
        if city:
            for s in c.indicators:
                click.echo(
                    f"   {s.id:<22} {names[s.id].name_zh:<14} {s.points:6.2f} / "
                    f"{names[s.id].weight:<4g} {s.reason}"
                )
            for r in c.reasons:
                click.echo(f"   {r}")


@grade.command("rank")
@click.argument("round_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rank(round_id: str, as_json: bool) -> None:
    """Cities in merit order (the tie-breaks are printed)."""
    res = _results(round_id)
    if as_json:
        _json(res.ranking_dict()["cities"])
        return
    click.echo(f"merit order: {res.merit_rule}")
    for c in res.cities:
        click.echo(
            f"{c.rank:>3}. {c.code} {c.name_zh:<6} {STARS * c.stars or '-':<5} {c.score:7.2f}"
        )


@grade.command("allocate")
@click.argument("round_id")
@click.option("--policy", help="What-if: allocate with another policy file and compare.")
@click.option(
    "--catalogue", help="What-if: score with another catalogue file (e.g. a changed weight)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def allocate_cmd(round_id: str, policy: str | None, catalogue: str | None, as_json: bool) -> None:
    """Award amounts with their reasons; `--policy` and/or `--catalogue` compute a what-if and
    show the two allocations side by side (nothing stored changes)."""
    from grading.results import what_if

    res = _results(round_id)
    if policy or catalogue:
        other = _results(round_id, policy, catalogue)
        rows = what_if(res, other)
        a, b = "current", " + ".join(x for x in (policy, catalogue) if x)
        if as_json:
            _json(
                {
                    "a": a,
                    "b": b,
                    "policy": other.policy["id"],
                    "catalogue": other.catalogue.id,
                    "cities": rows,
                }
            )
            return
        click.echo(f"{'city':<14}{a:>22}{Path(b).name[:21]:>22}{'change':>14}")
        for r in rows:
            click.echo(
                f"{r['code']} {r['name_zh']:<6} {r['a']['amount']:>21,.0f} "
                f"{r['b']['amount']:>21,.0f} {r['amount_change']:>+13,.0f}"
            )
        click.echo(
            f"{'total':<14}{res.allocation.allocated:>22,.0f}{other.allocation.allocated:>22,.0f}"
        )
        return
    if as_json:
        _json(res.allocation_dict())
        return
    totals = res.allocation
    click.echo(f"policy {res.policy['id']}: budget {totals.budget:,.0f}")
    for c in res.cities:
        click.echo(f"{c.rank:>3}. {c.code} {c.name_zh:<6} {c.amount:>13,.0f}  {c.award_reason}")
    click.echo(f"allocated {totals.allocated:,.0f}, left {totals.left:,.0f}")


@grade.command("report")
@click.argument("round_id")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
def report(round_id: str, out: Path, lang: str) -> None:
    """Write the round report, ready to sign: .pdf or .html (by the file's suffix)."""
    from grading.report import render_html, render_pdf
    from grading.rounds import get_round

    res = _results(round_id)
    try:
        rnd = get_round(command_engine(), round_id)
        if out.suffix.lower() == ".pdf":
            out.write_bytes(render_pdf(res, rnd.summary(), lang))
        elif out.suffix.lower() in (".html", ".htm"):
            out.write_text(render_html(res, rnd.summary(), lang), encoding="utf-8")
        else:
            raise InvalidInput(f"{out}: reports are .pdf or .html")
    except CimError as exc:
        fail(exc)
    click.echo(f"{out}: report of round {round_id} ({rnd.status})")


@grade.command("audit")
@click.argument("round_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_cmd(round_id: str | None, as_json: bool) -> None:
    """The audit log (of one round, or everything): who changed what, when, old → new."""
    from grading.access import audit_log

    try:
        entries = audit_log(command_engine(), round_id)
    except CimError as exc:
        fail(exc)
    if as_json:
        _json(entries)
        return
    for e in entries:
        change = orjson.dumps(e["old"]).decode() + " -> " + orjson.dumps(e["new"]).decode()
        click.echo(
            f"{e['id']:>5} {e['at'][:19]} {e['actor']:<24} {e['action']:<14} "
            f"{e['target'] or '':<24} {change[:160]}"
        )


# ---------------------------------------------------------------- keys
@grade.group("keys")
def grade_keys() -> None:
    """API keys for the web API: viewer, assessor (per city), reviewer, admin."""


@grade_keys.command("create")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["viewer", "assessor", "reviewer", "admin"]), required=True
)
@click.option("--city", "cities", multiple=True, help="A city an assessor may enter values for.")
def keys_create(name: str, role: str, cities: tuple[str, ...]) -> None:
    """Create a key; it is printed once (only its SHA-256 is stored)."""
    from grading.access import cli_actor, create_key

    try:
        key_id, secret = create_key(command_engine(), cli_actor(), name, role, list(cities))
    except CimError as exc:
        fail(exc)
    click.echo(f"key {key_id} ({role}) for {name}; hand this over now, it is not stored:", err=True)
    click.echo(secret)


@grade_keys.command("list")
def keys_list() -> None:
    """List keys (never the secrets)."""
    from grading.access import list_keys

    try:
        keys = list_keys(command_engine())
    except CimError as exc:
        fail(exc)
    for k in keys:
        state = f"revoked {k['revoked_at']:%Y-%m-%d}" if k["revoked_at"] else "active"
        click.echo(f"{k['id']}  {k['role']:<9} {state:<18} {k['name']}  {' '.join(k['cities'])}")


@grade_keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; it stops working at once."""
    from grading.access import cli_actor, revoke_key

    try:
        revoke_key(command_engine(), cli_actor(), key_id)
    except CimError as exc:
        fail(exc)
    click.echo(f"key {key_id} revoked")
