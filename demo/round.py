"""The demo round: Shandong's 16 cities in 2026 with example values (demo/data), and
Jinan's model indicators computed from the demo city over an invented built-up area, with an
invented acceptance record of its CIM platform — so the dashboard has something to show
after `make run`. The values are invented for the demonstration; they are no city's record."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from cim.errors import NotFound
from grading import rounds
from grading.access import cli_actor
from grading.areas import declare_area
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.computed import enter_cim_indicators
from grading.evidence import EvidenceFile
from grading.platform import FUNCTION_GROUPS, declare_function
from grading.regions import SHANDONG
from grading.templates import import_values

DEMO_ROUND = "demo-2026"
DATA = Path(__file__).resolve().parent / "data"
VALUES = DATA / "shandong-2026-values.csv"
BUILT_UP = DATA / "370100-demo-built-up.geojson"  # in EPSG:4548, as a committee file may be
PLATFORM = DATA / "evidence" / "370100-cim-platform-acceptance.txt"


def load_demo_round(engine: Engine, model_city: str = "370100") -> bool:
    """Create the demo round unless it exists; returns whether it was created."""
    try:
        rounds.get_round(engine, DEMO_ROUND)
        return False
    except NotFound:
        pass
    actor = cli_actor("demo")
    rounds.create_round(
        engine,
        actor,
        DEMO_ROUND,
        "山东省新型智慧城市星级评价（示例数据） 2026",
        2026,
        built_in("db37-3890.1-2020"),
        built_in_policy("shandong-example"),
        SHANDONG,
    )
    import_values(engine, actor, DEMO_ROUND, VALUES.read_bytes(), str(VALUES), VALUES.parent)
    declare_area(
        engine,
        actor,
        DEMO_ROUND,
        "370100",
        EvidenceFile(BUILT_UP.name, BUILT_UP.read_bytes(), "application/geo+json"),
        "built_up",
        "demo: an invented built-up boundary around the demo city",
        name="示例城区建成区（演示）",
    )
    acceptance = EvidenceFile(PLATFORM.name, PLATFORM.read_bytes(), "text/plain")
    for n, group in enumerate(FUNCTION_GROUPS, start=1):
        declare_function(
            engine, actor, DEMO_ROUND, "370100", group, acceptance, f"section {n} (demo)"
        )
    enter_cim_indicators(engine, actor, DEMO_ROUND, "370100", model_city)
    return True
