"""A draft round of one city on the built-in example catalogue and policy, for tests that need
a round and nothing more."""

from __future__ import annotations

from sqlalchemy import Engine

from grading import access, rounds
from grading.awards import built_in_policy
from grading.catalogue import built_in


def one_city_round(
    engine: Engine, round_id: str, city: str = "370100", actor: access.Actor | None = None
) -> None:
    rounds.create_round(
        engine,
        actor or access.cli_actor(),
        round_id,
        "test",
        2026,
        built_in("db37-3890.1-2020"),
        built_in_policy("shandong-example"),
        [rounds.CityEntry(city, "济南市", "Jinan")],
    )


def declare_area_and_platform(
    engine: Engine, round_id: str, city: str = "370100", actor: access.Actor | None = None
) -> None:
    """What the model indicators stand on, as the demo round declares it: the demo's built-up
    area (a committee file in EPSG:4548) and all seven platform function groups, with evidence."""
    from demo.round import BUILT_UP, PLATFORM
    from grading.areas import declare_area
    from grading.evidence import EvidenceFile
    from grading.platform import FUNCTION_GROUPS, declare_function

    actor = actor or access.cli_actor()
    area = EvidenceFile(BUILT_UP.name, BUILT_UP.read_bytes(), "application/geo+json")
    declare_area(engine, actor, round_id, city, area, "built_up", "test: the demo's area")
    acceptance = EvidenceFile(PLATFORM.name, PLATFORM.read_bytes(), "text/plain")
    for group in FUNCTION_GROUPS:
        declare_function(engine, actor, round_id, city, group, acceptance, "test")
