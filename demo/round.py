"""The demo round: Shandong's 16 cities in 2026 with example values (demo/data), and
Jinan's model indicators computed from the demo city — so the dashboard has something to show
after `make run`. The values are invented for the demonstration; they are no city's record."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from cim.errors import NotFound
from grading import rounds
from grading.access import cli_actor
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.regions import SHANDONG
from grading.templates import import_values
from grading.values import enter_cim_indicators

DEMO_ROUND = "demo-2026"
VALUES = Path(__file__).resolve().parent / "data" / "shandong-2026-values.csv"


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
    enter_cim_indicators(engine, actor, DEMO_ROUND, "370100", model_city)
    return True
