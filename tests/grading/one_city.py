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
