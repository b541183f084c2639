"""`cim grade score|rank|allocate|report|export|audit`: what a round's values come to, and its
record."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from cim.errors import CimError, InvalidInput
from cli.common import command_engine, fail, print_json
from cli.grade.catalogues import catalogue_from

STARS = "★"
PROVISIONAL_MARK = "*"


if TYPE_CHECKING:
    from grading.results import RoundResults


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
            catalogue=catalogue_from(catalogue) if catalogue else None,
        )
    except CimError as exc:
        fail(exc)


@click.command("score")
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
        print_json([res.city_dict(c.code) for c in rows])
        return
    names = {i.id: i for i in res.catalogue.indicators}
    areas = {a.id: a.name_zh for a in res.catalogue.areas}
    mark = PROVISIONAL_MARK if res.scores_provisional() else ""
    for c in sorted(rows, key=lambda c: c.code):
        click.echo(
            f"{c.code} {c.name_zh:<6} total {c.total:6.2f} + bonus {c.bonus:4.2f}  "
            f"{STARS * c.stars or '-'}{mark:<{6 - c.stars}} {c.subtype or ''}"
        )
        click.echo(  # the area subtotals, as the committee's papers show them
            "   " + "  ".join(f"{areas[a.id]} {a.points:.2f}/{a.weight:g}" for a in c.areas)
        )
        if city:
            for s in c.indicators:
                flag = PROVISIONAL_MARK if names[s.id].provisional else " "
                click.echo(
                    f"   {s.id:<22} {names[s.id].name_zh:<14} {s.points:6.2f} / "
                    f"{names[s.id].weight:<4g}{flag} {s.reason}"
                )
            for r in c.reasons:
                click.echo(f"   {r}")
    _footnote(mark)


@click.command("rank")
@click.argument("round_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rank(round_id: str, as_json: bool) -> None:
    """Cities in merit order (the tie-breaks are printed)."""
    res = _results(round_id)
    if as_json:
        print_json(res.ranking_dict()["cities"])
        return
    click.echo(f"merit order: {res.merit_rule}")
    mark = PROVISIONAL_MARK if res.scores_provisional() else ""
    for c in res.cities:
        click.echo(
            f"{_place(c.rank)}. {c.code} {c.name_zh:<6} {STARS * c.stars or '-':<5} "
            f"{c.score:7.2f}{mark}"
        )
    _footnote(mark)


@click.command("compare")
@click.argument("round_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_cmd(round_id: str, as_json: bool) -> None:
    """Each city compared with the previous round linked to this one (`cim grade round link`):
    rank, stars, score and award then -> now, and the change of each area's points."""
    from grading.comparison import compare

    try:
        cmp = compare(command_engine(), round_id)
    except CimError as exc:
        fail(exc)
    if as_json:
        print_json(cmp.to_dict())
        return
    click.echo(
        f"{round_id} compared with {cmp.previous_round_id} ({cmp.previous_year}, "
        f"SHA-256 {cmp.previous_sha256[:12]}…)"
    )
    if not cmp.same_catalogue:
        click.echo(f"catalogues differ: {cmp.catalogues[0]} -> {cmp.catalogues[1]}")
    for c in cmp.cities:
        then = _standing(c.before)
        now = _standing(c.now)
        moved = "" if c.rank_change is None else f" ({c.rank_change:+d})"
        score = "" if c.score_change is None else f" {c.score_change:+.2f}"
        click.echo(f"{c.code} {c.name_zh:<6} {then}  ->  {now}{moved}{score}")
        areas = [f"{a.id} {'-' if a.change is None else f'{a.change:+.2f}'}" for a in c.areas]
        click.echo(f"{'':<8}{', '.join(areas)}")


def _standing(s: object) -> str:
    if s is None:
        return "not in the round"
    if getattr(s, "not_assessed", False):
        return "not assessed"
    rank, stars, score = (getattr(s, k) for k in ("rank", "stars", "score"))
    return f"{_place(rank)}. {STARS * stars or '-':<5} {score:7.2f}"


@click.command("allocate")
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
            print_json(
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
        print_json(res.allocation_dict())
        return
    totals = res.allocation
    mark = PROVISIONAL_MARK if res.amounts_provisional() else ""
    click.echo(f"policy {res.policy['id']}: budget {totals.budget:,.0f}{mark}")
    for c in res.cities:
        click.echo(
            f"{_place(c.rank)}. {c.code} {c.name_zh:<6} {c.amount:>13,.0f}{mark:1} {c.award_reason}"
        )
    click.echo(f"allocated {totals.allocated:,.0f}, left {totals.left:,.0f}")
    _footnote(mark)


@click.command("report")
@click.argument("round_id")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
def report(round_id: str, out: Path, lang: str) -> None:
    """Write the round report, ready to sign: .pdf or .html (by the file's suffix)."""
    from grading.comparison import linked_comparison
    from grading.report import render_html, render_pdf
    from grading.rounds import get_round

    res = _results(round_id)
    try:
        rnd = get_round(command_engine(), round_id)
        cmp = linked_comparison(command_engine(), round_id)
        if out.suffix.lower() == ".pdf":
            out.write_bytes(render_pdf(res, rnd.summary(), lang, cmp))
        elif out.suffix.lower() in (".html", ".htm"):
            out.write_text(render_html(res, rnd.summary(), lang, cmp), encoding="utf-8")
        else:
            raise InvalidInput(f"{out}: reports are .pdf or .html")
    except CimError as exc:
        fail(exc)
    click.echo(f"{out}: report of round {round_id} ({rnd.status})")


@click.command("export")
@click.argument("round_id")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The workbook to write (.xlsx); an existing file is replaced.",
)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="Sheet names and headers in Chinese or English.",
)
def export_cmd(round_id: str, out: Path, lang: str) -> None:
    """Write the round's papers as an Excel workbook: ranking, allocation, values, round.

    \b
    Sheets (named in Chinese, or in English with --lang en):
      Ranking      排名: rank, city, stars, each area's subtotal, total, bonus, score, award;
                   cities not assessed (未评) last
      Allocation   奖补分配: each award and its reason; budget, =SUM of awards, what is left
      Values       指标数值: every city x indicator: value, unit, kind, level, points,
                   source, evidence SHA-256, who entered it
      Round        轮次信息: status, catalogue, policy, generated time; if final, the SHA-256
    A round that is not final says "DRAFT — not final" on every sheet. Totals are formulas,
    computed when Excel or LibreOffice opens the file.

    \b
    Example:
      cim grade export sd-2026 --out sd-2026.xlsx --lang en
    """
    from grading.workbook import export

    try:
        if out.suffix.lower() != ".xlsx":
            raise InvalidInput(f"{out}: the workbook is written as .xlsx")
        out.write_bytes(export(command_engine(), round_id, lang))
    except CimError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"{out}: cannot write the workbook ({exc.strerror})")
    click.echo(f"{out}: workbook of round {round_id}")


@click.command("audit")
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
        print_json(entries)
        return
    for e in entries:
        click.echo(
            f"{e['id']:>5} {e['at'][:19]} {e['actor']:<24} {e['action']:<14} {e['target'] or ''}"
        )
        # the whole change, wrapped under the entry: an audit never cuts a value short
        change = orjson.dumps(e["old"]).decode() + " -> " + orjson.dumps(e["new"]).decode()
        for line in textwrap.wrap(change, 94, break_long_words=True, break_on_hyphens=False):
            click.echo(f"      {line}")


def _place(rank: int | None) -> str:
    return f"{rank:>3}" if rank is not None else "未评"  # not assessed


def _footnote(mark: str) -> None:
    if mark:
        click.echo(
            f"{PROVISIONAL_MARK} provisional: rests on a weight, threshold, star rule or policy "
            "value the committee has not confirmed (see the catalogue's and policy's provenance, "
            "and the report's annex) / 暂定数值，须评审委员会确认"
        )
