"""Missing data is not a zero: the required values a round still lacks, and the committee's
exemptions (a city, or one indicator of a city, with the reason it may stay empty). A round is
submitted or made final only when every required value is entered or exempted."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from cim.errors import Conflict, InvalidInput
from grading.access import Actor, audit, require, require_round
from grading.store import Round, as_round, round_row


def missing_required(conn: Connection, rnd: Round) -> dict[str, list[str]]:
    """city -> the required (non-bonus) indicators with no value and no exemption."""
    round_id = rnd.id
    required = [i.id for i in rnd.catalogue.indicators if not i.bonus]
    cities = conn.execute(
        text("SELECT code FROM grading_city WHERE round_id = :r ORDER BY code"), {"r": round_id}
    ).scalars()
    have = {
        (c, i)
        for c, i in conn.execute(
            text(
                "SELECT DISTINCT city_code, indicator_id FROM grading_value WHERE round_id = :r "
                "AND value IS NOT NULL AND value <> 'null'::jsonb "
                "UNION SELECT city_code, indicator_id FROM grading_exemption WHERE round_id = :r"
            ),
            {"r": round_id},
        )
    }
    out = {}
    for city in cities:
        if (city, "") in have:
            continue
        lacking = [i for i in required if (city, i) not in have]
        if lacking:
            out[city] = lacking
    return out


def require_complete(conn: Connection, rnd: Round, to: str) -> None:
    """Refuse to submit or finalise a round that lacks required values.

    Raises:
        Conflict: naming each city and what it lacks.
    """
    round_id = rnd.id
    missing = missing_required(conn, rnd)
    if missing:
        count = sum(map(len, missing.values()))
        listed = "; ".join(f"{city}: {', '.join(inds)}" for city, inds in missing.items())
        raise Conflict(
            f"round {round_id} cannot be {to}: {count} required value(s) are missing ({listed}). "
            "Enter them, or record why they may be missing (cim grade exempt, or PUT "
            ".../cities/{city}/exemptions)"
        )


def exempt(
    engine: Engine, actor: Actor, round_id: str, city: str, indicator: str | None, reason: str
) -> None:
    """Record why a city's value of an indicator (or every value of the city) may be missing.

    Raises:
        Forbidden: not an admin. Conflict: the round is final.
        InvalidInput: no reason, a city not in the round, an indicator not in its catalogue.
    """
    require(actor, "admin")
    require_round(actor, round_id)
    if not reason.strip():
        raise InvalidInput("an exemption needs its reason (it goes into the audit log)")
    with engine.begin() as conn:
        row = round_row(conn, round_id, lock=True)
        if row.status == "final":
            raise Conflict(f"round {round_id} is final: nothing in it changes")
        rnd = as_round(row)
        if not conn.execute(
            text("SELECT 1 FROM grading_city WHERE round_id = :r AND code = :c"),
            {"r": round_id, "c": city},
        ).first():
            raise InvalidInput(f"city {city!r} is not in round {round_id}")
        if indicator is not None and indicator not in {i.id for i in rnd.catalogue.indicators}:
            raise InvalidInput(f"catalogue {rnd.catalogue.id} has no indicator {indicator!r}")
        conn.execute(
            text(
                "INSERT INTO grading_exemption (round_id, city_code, indicator_id, reason, "
                "granted_by) VALUES (:r, :c, :i, :reason, :by) ON CONFLICT (round_id, city_code, "
                "indicator_id) DO UPDATE SET reason = EXCLUDED.reason, "
                "granted_by = EXCLUDED.granted_by, granted_at = now()"
            ),
            {"r": round_id, "c": city, "i": indicator or "", "reason": reason, "by": actor.name},
        )
        target = f"{city}/{indicator}" if indicator else city
        audit(conn, actor, "value.exempt", round_id, target, None, {"reason": reason.strip()})
