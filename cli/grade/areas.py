"""`cim grade area` and `cim grade platform`: what the model indicators of a city stand on — the
area its coverage and densities are computed over, and the function groups its CIM platform
offers."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cim.errors import CimError
from cli.common import command_engine, fail, grade_actor, print_json, read_file

if TYPE_CHECKING:
    from grading.evidence import EvidenceFile


def _file(path: Path) -> EvidenceFile:
    from grading.evidence import EvidenceFile

    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return EvidenceFile(path.name, read_file(path), media)


@click.group("area")
def grade_area() -> None:
    """The area a city's coverage and density indicators are computed over.

    \b
    3D model coverage, 5G base-station density and IoT node density are figures per area: the
    committee declares each city's administrative or built-up boundary from a file (GeoJSON,
    GeoPackage, KML or a zipped Shapefile), kept as evidence under its SHA-256.
      cim grade area declare sd-2026 --city 370100 jinan-built-up.geojson \\
            --kind built_up --name 济南市建成区 --reason "2025 statistical yearbook boundary"
      cim grade area show sd-2026
    """


@grade_area.command("declare")
@click.argument("round_id")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--city", required=True, help="City code in the round.")
@click.option(
    "--kind",
    type=click.Choice(["built_up", "administrative"]),
    required=True,
    help="Built-up area (建成区) or administrative area (行政区域).",
)
@click.option("--reason", required=True, help="Where the boundary comes from (audited).")
@click.option("--name", default="", help="The area's name, e.g. 济南市建成区.")
@click.option(
    "--crs",
    metavar="CRS",
    help="The file's CRS when it names none, e.g. EPSG:4547 (default: WGS 84 lon/lat).",
)
def declare_area_cmd(
    round_id: str, file: Path, city: str, kind: str, reason: str, name: str, crs: str | None
) -> None:
    """Declare (or replace) a city's area from a boundary file (admin)."""
    from grading.areas import declare_area

    try:
        area = declare_area(
            command_engine(), grade_actor(), round_id, city, _file(file), kind, reason, crs, name
        )
    except CimError as exc:
        fail(exc)
    click.echo(
        f"city {city}: {area.name or area.kind}, {area.area_km2:,.2f} km² "
        f"({area.features} feature(s) in {area.source_crs}), file SHA-256 {area.evidence_sha256}"
    )
    click.echo("compute the city's indicators again to use it: cim grade compute-cim-indicators")


@grade_area.command("show")
@click.argument("round_id")
@click.option("--city", help="Only this city.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with each area's GeoJSON).")
def show_areas(round_id: str, city: str | None, as_json: bool) -> None:
    """List the declared areas of a round: kind, name, size, file and its SHA-256."""
    from grading.areas import list_areas

    try:
        areas = [a for a in list_areas(command_engine(), round_id) if city in (None, a.city)]
    except CimError as exc:
        fail(exc)
    if as_json:
        print_json([{"city": a.city, **a.summary(), "geometry": a.geojson} for a in areas])
        return
    if not areas:
        click.echo(f"round {round_id}: no declared areas")
    for a in areas:
        click.echo(
            f"{a.city:<8} {a.kind:<15} {a.area_km2:>12,.2f} km²  {a.name or '-'}  "
            f"{a.filename} ({a.evidence_sha256[:12]}…, {a.source_crs}) by {a.declared_by}: "
            f"{a.reason}"
        )


@click.group("platform")
def grade_platform() -> None:
    """The function groups a city's CIM platform offers (CJJ/T 315-2022 §4.3.2).

    \b
    "CIM platform in place" counts when the city declares all seven, each with evidence:
      data_management        数据汇聚与管理      analysis                分析应用
      scene_configuration    场景配置            operation_service       运行与服务
      query_visualisation    数据查询与可视化    development_interfaces  开发接口
      data_sharing           数据共享与交换
      cim grade platform declare sd-2026 --city 370100 data_sharing \\
            --evidence acceptance-report.pdf --note "OGC API and 3D Tiles services"
    """


@grade_platform.command("declare")
@click.argument("round_id")
@click.argument("group")
@click.option("--city", required=True, help="City code in the round.")
@click.option(
    "--evidence",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The file that shows the platform offers it (report, screenshot, interface document).",
)
@click.option("--note", default="", help="What the evidence shows.")
def declare_function_cmd(round_id: str, group: str, city: str, evidence: Path, note: str) -> None:
    """Declare that the city's platform offers a function group, with its evidence."""
    from grading.platform import declare_function

    try:
        changed = declare_function(
            command_engine(), grade_actor(), round_id, city, group, _file(evidence), note
        )
    except CimError as exc:
        fail(exc)
    click.echo(f"city {city}: {group} {'declared' if changed else 'unchanged'} ({evidence.name})")


@grade_platform.command("withdraw")
@click.argument("round_id")
@click.argument("group")
@click.option("--city", required=True, help="City code in the round.")
@click.option("--reason", required=True, help="Why (audited).")
def withdraw_function_cmd(round_id: str, group: str, city: str, reason: str) -> None:
    """Withdraw a declared function group."""
    from grading.platform import withdraw_function

    try:
        withdraw_function(command_engine(), grade_actor(), round_id, city, group, reason)
    except CimError as exc:
        fail(exc)
    click.echo(f"city {city}: {group} withdrawn")


@grade_platform.command("show")
@click.argument("round_id")
@click.option("--city", required=True, help="City code in the round.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_functions(round_id: str, city: str, as_json: bool) -> None:
    """Which function groups the city declared, with their evidence, and which are missing."""
    from grading.platform import FUNCTION_GROUPS, platform_functions

    try:
        declared = platform_functions(command_engine(), round_id, city)
    except CimError as exc:
        fail(exc)
    if as_json:
        print_json(declared)
        return
    by_group = {f["group"]: f for f in declared}
    for group, (zh, _en) in FUNCTION_GROUPS.items():
        f = by_group.get(group)
        state = f"{f['file']} ({f['evidence_sha256'][:12]}…) {f['note']}" if f else "— missing"
        click.echo(f"{group:<24} {zh}\t{state}")
    click.echo(f"{len(declared)} of {len(FUNCTION_GROUPS)} declared")
