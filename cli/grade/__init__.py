"""`cim grade`: smart-city star grading from the command line.

The command line holds the database credentials, so it acts as an admin (audited as
`cli:<user>`); people working through the web API use API keys (`cim grade keys create`).
"""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

from cim.errors import CimError, Conflict, Forbidden
from cli.common import command_engine
from cli.grade.areas import grade_area, grade_platform
from cli.grade.catalogues import grade_catalogue, grade_policy
from cli.grade.keys import grade_keys
from cli.grade.results import (
    allocate_cmd,
    audit_cmd,
    compare_cmd,
    export_cmd,
    rank,
    report,
    score,
)
from cli.grade.rounds import grade_round
from cli.grade.values import choose_cmd, compute_cim, exempt_cmd, grade_values, template


@click.group()
@click.option(
    "--as",
    "as_name",
    envvar="CIM_ACTOR",
    metavar="NAME",
    help="Who you are: every change is audited under this name (or set CIM_ACTOR).",
)
def grade(as_name: str | None) -> None:
    """Smart-city star grading (DB37/T 3890, GB/T 33356): catalogues, rounds, scores, awards.

    \b
    A round, start to finish:
      cim grade round create sd-2026 --year 2026 --catalogue db37-3890.1-2020 \\
            --policy shandong-example --cities shandong
      cim grade template sd-2026 values.xlsx           fill it in (evidence files beside it)
      cim grade values import sd-2026 values.xlsx
      cim grade area declare sd-2026 --city 370100 built-up.geojson --kind built_up …
      cim grade platform declare sd-2026 --city 370100 GROUP --evidence FILE
      cim grade compute-cim-indicators sd-2026 --city 370100
      cim grade score sd-2026 ; cim grade rank sd-2026 ; cim grade allocate sd-2026
      cim grade round status sd-2026 submitted|reviewed|final
      cim grade report sd-2026 report.pdf
      cim grade export sd-2026 --out sd-2026.xlsx      ranking, awards, values in Excel
    """
    context = click.get_current_context()
    context.meta["cim.actor"] = as_name
    context.meta["cim.on_refused"] = _record_refusal


def _record_refusal(exc: CimError) -> None:
    """A change the command line was refused (403, 409) into the round's audit log."""
    from grading.access import cli_actor, record_refusal

    status = {Forbidden: 403, Conflict: 409}.get(type(exc))
    context = click.get_current_context()
    if status is None or not isinstance(context.params.get("round_id"), str):
        return
    try:
        record_refusal(
            command_engine(),
            cli_actor(context.meta.get("cim.actor")),
            context.params["round_id"],
            context.command_path,
            status,
            str(exc),
        )
    except (CimError, SQLAlchemyError):
        pass  # the refusal stands; there is no database to keep it in


for command in (
    grade_catalogue,
    grade_policy,
    grade_round,
    template,
    grade_values,
    grade_area,
    grade_platform,
    compute_cim,
    choose_cmd,
    exempt_cmd,
    score,
    rank,
    allocate_cmd,
    compare_cmd,
    report,
    export_cmd,
    audit_cmd,
    grade_keys,
):
    grade.add_command(command)
