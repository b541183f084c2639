"""The values a city's model and its platform declarations prove, entered as its computed values
(next to, never over, the values it reported): the model indicators computed in PostGIS over the
city's declared area, and "CIM platform in place" from the function groups it declared."""

from __future__ import annotations

from sqlalchemy import Engine

from cim.errors import InvalidInput
from grading import cim_indicators, platform
from grading.access import Actor, require
from grading.areas import DeclaredArea, get_area
from grading.platform import declared_functions
from grading.rounds import get_round
from grading.values import ValueEntry, set_values


def enter_cim_indicators(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    model_city: str | None = None,
    params: cim_indicators.Parameters | None = None,
    only: tuple[str, ...] = (),
) -> list[tuple[str, cim_indicators.Computed]]:
    """Compute the indicators the round's catalogue marks `computed_from_cim` (or `only` those,
    by indicator id or CIM name) and enter them as the city's computed values, with their query
    and inputs as evidence: the model indicators from the city model (the area-based ones over
    the city's declared area), "CIM platform" from the function groups the city declared.
    Returns (indicator id, computed) for each; enters all or nothing.

    Raises:
        InvalidInput: the catalogue has no such indicators, or what they need is missing (the
        city's declared area, its platform's function groups), all named at once.
        Forbidden: another city's model, asked for by less than an admin.
        NotFound: no model of the city.
    """
    rnd = get_round(engine, round_id)
    wanted = [
        (i.id, i.computed_from_cim)
        for i in rnd.catalogue.indicators
        if i.computed_from_cim and (not only or i.id in only or i.computed_from_cim in only)
    ]
    if not wanted:
        raise InvalidInput(
            f"catalogue {rnd.catalogue.id} has no CIM-computed indicators"
            + (f" among {', '.join(only)}" if only else "")
        )
    model = model_city or city
    if model != city:  # another city's model would prove nothing about this one
        require(actor, "admin")
    names = tuple(dict.fromkeys(name for _, name in wanted))
    with engine.connect() as conn:
        area = get_area(conn, round_id, city)
        functions = declared_functions(conn, round_id, city)
    lacking = []
    over_area = [n for n in names if n in cim_indicators.AREA_NAMES]
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
    model_names = tuple(n for n in names if n != "cim_platform")
    computed = (
        cim_indicators.compute(
            engine,
            model,
            params,
            model_names,
            None if area is None else cim_indicators.Area(area.geojson, area.summary()),
        )
        if model_names
        else []  # the platform alone needs no model
    )
    by_name = {c.name: c for c in computed}
    if "cim_platform" in names:
        in_place, inputs, evidence = platform.assess(functions)
        by_name["cim_platform"] = cim_indicators.Computed(
            "cim_platform", in_place, "", inputs, {**evidence, "value": in_place}
        )
    done = [(ind_id, by_name[name]) for ind_id, name in wanted]
    set_values(
        engine,
        actor,
        round_id,
        [
            ValueEntry(
                city=city,
                indicator=ind_id,
                value=c.value,
                unit=c.unit,
                source=computed_source(c, model, area),
                note=", ".join(f"{k} {v}" for k, v in c.inputs.items()),
                computed=c.evidence,
            )
            for ind_id, c in done
        ],
    )
    return done


def computed_source(c: cim_indicators.Computed, model: str, area: DeclaredArea | None) -> str:
    """The source a computed value is entered with: the model and, for an area-based one, the
    area it covers (name, kind, size, file and SHA-256); for the platform, its function groups.
    (grading.report_words reads these sentences to say them in Chinese.)"""
    if c.name == "cim_platform":
        offered, missing = c.inputs["offered"], c.inputs.get("missing") or []
        lacking = f"; missing: {', '.join(missing)}" if missing else ""
        return f"{offered} of 7 function groups declared with evidence ({platform.RULE}){lacking}"
    if c.name in cim_indicators.AREA_NAMES and area is not None:
        return f"CIM model of city {model}: {c.name}, over {area.label()}"
    return f"CIM model of city {model}: {c.name}"
