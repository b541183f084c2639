"""The values a city's model and its platform declarations prove, entered as its computed values
(next to, never over, the values it reported): the model indicators computed in PostGIS over the
city's declared area, and "CIM platform in place" from the function groups it declared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from cim.errors import Conflict, InvalidInput
from grading import cim_indicators, platform
from grading.access import Actor, refuse_reviewer, require, require_round
from grading.areas import DeclaredArea, get_area
from grading.platform import declared_functions
from grading.rounds import get_round
from grading.store import require_city
from grading.values import ValueEntry, set_values


@dataclass(frozen=True)
class Plan:
    """What a computation of a city's indicators will do, checked before it starts."""

    round_id: str
    city: str
    model: str
    wanted: tuple[tuple[str, str], ...]  # (indicator id, CIM name)
    area: DeclaredArea | None
    functions: list[dict[str, Any]]
    params: cim_indicators.Parameters | None
    named_by: str | None  # who named another city's model, on purpose

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for _, name in self.wanted))


Progress = Callable[[str, int, int], None]  # (step, done, of)


def plan_cim_indicators(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    model_city: str | None = None,
    params: cim_indicators.Parameters | None = None,
    only: tuple[str, ...] = (),
) -> Plan:
    """Check that the city's CIM indicators can be computed: who asks, the round (a draft), the
    indicators (the catalogue's `computed_from_cim`, or `only` those, by id or CIM name), and
    what they need (the declared area, the platform's function groups), all named at once.

    Raises:
        Forbidden: below assessor, another city, a reviewer; another city's model asked for by
        less than an admin. Conflict: the round is not a draft.
        InvalidInput: no such indicators, or what they need is missing.
    """
    require(actor, "assessor", city)
    require_round(actor, round_id)
    refuse_reviewer(actor)
    rnd = get_round(engine, round_id)
    if rnd.status != "draft":
        raise Conflict(f"round {round_id} is {rnd.status}: its values change only in a draft")
    wanted = tuple(
        (i.id, i.computed_from_cim)
        for i in rnd.catalogue.indicators
        if i.computed_from_cim and (not only or i.id in only or i.computed_from_cim in only)
    )
    if not wanted:
        raise InvalidInput(
            f"catalogue {rnd.catalogue.id} has no CIM-computed indicators"
            + (f" among {', '.join(only)}" if only else "")
        )
    model = model_city or city
    if model != city:  # another city's model proves nothing about this one, unless the
        require(actor, "admin")  # committee names it on purpose (recorded in the evidence)
    with engine.connect() as conn:
        require_city(conn, round_id, city)
        area = get_area(conn, round_id, city)
        functions = declared_functions(conn, round_id, city)
    names = tuple(dict.fromkeys(name for _, name in wanted))
    lacking = []
    over_area = [n for n in names if n in cim_indicators.AREA_BASED]
    if over_area and area is None:
        lacking.append(
            f"{', '.join(over_area)} are computed over the city's declared area, and city {city} "
            f"has none in round {round_id}: the committee supplies its administrative or "
            f"built-up boundary (cim grade area declare {round_id} --city {city} FILE --kind "
            "built_up|administrative --reason ..., or PUT .../cities/{city}/area)"
        )
    if "cim_platform" in names and not functions:
        lacking.append(
            f"cim_platform: city {city} has declared none of the seven function groups of its "
            f"CIM platform ({platform.RULE}): declare each one it offers with its evidence (cim "
            f"grade platform declare {round_id} --city {city} GROUP --evidence FILE); a city "
            "without a platform reports 'no' as its value"
        )
    if lacking:
        raise InvalidInput("cannot compute the CIM indicators:\n" + "\n".join(lacking))
    named_by = actor.name if model != city else None
    return Plan(round_id, city, model, wanted, area, functions, params, named_by)


def run_plan(
    engine: Engine, actor: Actor, plan: Plan, progress: Progress | None = None
) -> list[tuple[str, cim_indicators.Computed]]:
    """Compute what the plan says and enter the values (all or nothing); `progress` hears of
    each step. Returns (indicator id, computed) for each."""
    model_names = tuple(n for n in plan.names if n != "cim_platform")
    area = plan.area
    computed = (
        cim_indicators.compute(
            engine,
            plan.model,
            plan.params,
            model_names,
            None if area is None else cim_indicators.Area(area.geojson, area.summary()),
            progress,
        )
        if model_names
        else []  # the platform alone needs no model
    )
    by_name = {c.name: c for c in computed}
    if plan.named_by:
        for c in computed:  # the committee's choice of another city's model, on the record
            c.evidence["model"]["named_by"] = plan.named_by
    if "cim_platform" in plan.names:
        in_place, inputs, evidence = platform.assess(plan.functions)
        by_name["cim_platform"] = cim_indicators.Computed(
            "cim_platform", in_place, "", inputs, {**evidence, "value": in_place}
        )
    done = [(ind_id, by_name[name]) for ind_id, name in plan.wanted]
    if progress:
        progress("entering the values", len(model_names), len(model_names))
    set_values(
        engine,
        actor,
        plan.round_id,
        [
            ValueEntry(
                city=plan.city,
                indicator=ind_id,
                value=c.value,
                unit=c.unit,
                source=computed_source(c, plan.model, area, plan.named_by),
                note=", ".join(f"{k} {v}" for k, v in c.inputs.items()),
                computed=c.evidence,
            )
            for ind_id, c in done
        ],
    )
    return done


def enter_cim_indicators(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    model_city: str | None = None,
    params: cim_indicators.Parameters | None = None,
    only: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> list[tuple[str, cim_indicators.Computed]]:
    """Compute the indicators the round's catalogue marks `computed_from_cim` (or `only` those)
    and enter them as the city's computed values, with their query and inputs as evidence: the
    model indicators from the city model (the area-based ones over the city's declared area),
    "CIM platform" from the function groups the city declared. Returns (indicator id,
    computed) for each; enters all or nothing. (`grading.jobs` runs the same in the background,
    one computation per city at a time.)

    Raises:
        as `plan_cim_indicators`; NotFound: no model of the city.
    """
    plan = plan_cim_indicators(engine, actor, round_id, city, model_city, params, only)
    return run_plan(engine, actor, plan, progress)


def computed_source(
    c: cim_indicators.Computed,
    model: str,
    area: DeclaredArea | None,
    named_by: str | None = None,
) -> str:
    """The source a computed value is entered with: the model and, for an area-based one, the
    area it covers (name, kind, size, file and SHA-256); for the platform, its function groups.
    (grading.report_words reads these sentences to say them in Chinese.)"""
    if c.name == "cim_platform":
        offered, missing = c.inputs["offered"], c.inputs.get("missing") or []
        lacking = f"; missing: {', '.join(missing)}" if missing else ""
        return f"{offered} of 7 function groups declared with evidence ({platform.RULE}){lacking}"
    named = f" (named by {named_by})" if named_by else ""
    if c.name in cim_indicators.AREA_BASED and area is not None:
        return f"CIM model of city {model}{named}: {c.name}, over {area.label()}"
    return f"CIM model of city {model}{named}: {c.name}"
