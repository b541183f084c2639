"""Assessment rounds: creating them, reading them, the award policy, and the lifecycle.

A round freezes a copy of its catalogue and award policy, so later edits to the files do not
change it. Values, evidence and the policy change only while the round is a draft (see
`grading.values`, `grading.evidence`); a final round is immutable and keeps its results with
their SHA-256, so a recomputation can be checked against them (`grading.outcome`). Every change
is checked against the caller's role and written to the audit log in the same transaction.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from cim.errors import Conflict, Forbidden, InvalidInput, NotFound
from grading.access import Actor, audit, require, require_round
from grading.awards import AwardPolicy
from grading.catalogue import NAME, TEXT, Catalogue
from grading.exemptions import require_complete
from grading.freshness import require_fresh
from grading.outcome import compute
from grading.store import Round, as_round, city_rows, model_json, require_draft, round_row

# cities in one round: a province's cities, districts and counties (Shandong has 16 cities and
# 136 county-level divisions) fit many times over; ranking and reports cost in proportion
MAX_CITIES = 500
STATUSES = ("draft", "submitted", "reviewed", "final")
# the moves a round can make, and the role each target status needs
MOVES = {
    ("draft", "submitted"),
    ("submitted", "reviewed"),
    ("submitted", "draft"),
    ("reviewed", "draft"),
    ("reviewed", "final"),
}
# four eyes: the move to the key's status is refused to whoever made the move to its value
FOUR_EYES = {"reviewed": "submitted", "final": "reviewed"}
ROLE_TO_MOVE = {
    "submitted": "reviewer",
    "reviewed": "reviewer",
    "draft": "reviewer",
    "final": "admin",
}


@dataclass(frozen=True)
class CityEntry:
    """A city in a round."""

    code: str
    name_zh: str
    name_en: str
    previous_stars: int | None = None
    previous_total: float | None = None


def create_round(
    engine: Engine,
    actor: Actor,
    round_id: str,
    title: str,
    year: int,
    catalogue: Catalogue,
    policy: AwardPolicy,
    cities: list[CityEntry],
) -> Round:
    """A new draft round with its cities.

    Raises:
        Forbidden: not an admin. Conflict: the id is taken. InvalidInput: bad id or no cities.
    """
    require(actor, "admin")
    require_round(actor, round_id)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", round_id or ""):
        raise InvalidInput(
            f"round id {round_id!r}: up to 64 ASCII letters, digits, '-', '_' or '.'"
        )
    if not title or len(title) > TEXT:
        raise InvalidInput(f"round {round_id}: a title must have 1 to {TEXT} characters")
    if not cities:
        raise InvalidInput(f"round {round_id}: no cities")
    if len(cities) > MAX_CITIES:
        raise InvalidInput(
            f"round {round_id}: {len(cities)} cities; a round holds at most {MAX_CITIES} "
            "(every city, district and county of a province is fewer)"
        )
    for c in cities:
        named = {"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en}
        for field, value in named.items():
            most = 64 if field == "code" else NAME
            if not value or len(value) > most:
                raise InvalidInput(
                    f"round {round_id}: city {c.code[:64]!r}: {field} must have 1 to {most} "
                    "characters"
                )
        total = c.previous_total
        if total is not None and not (math.isfinite(total) and total >= 0):
            raise InvalidInput(
                f"round {round_id}: city {c.code}: previous_total {total} is not a total of "
                "points (a finite number, 0 or more)"
            )
        if c.previous_stars is not None and not 0 <= c.previous_stars <= 5:
            raise InvalidInput(
                f"round {round_id}: city {c.code}: previous_stars {c.previous_stars} is not 0 to 5"
            )
    codes = [c.code for c in cities]
    if len(set(codes)) != len(codes):
        raise InvalidInput(f"round {round_id}: a city is listed twice")
    try:
        with engine.begin() as conn:
            taken = text("SELECT 1 FROM grading_round WHERE id = :id")
            if conn.execute(taken, {"id": round_id}).first():
                raise Conflict(f"round {round_id!r} exists already")
            conn.execute(
                text(
                    "INSERT INTO grading_round (id, title, year, catalogue, policy, created_by) "
                    "VALUES (:id, :title, :year, CAST(:cat AS jsonb), CAST(:pol AS jsonb), :by)"
                ),
                {
                    "id": round_id,
                    "title": title,
                    "year": year,
                    "cat": model_json(catalogue),
                    "pol": model_json(policy),
                    "by": actor.name,
                },
            )
            for city in cities:
                conn.execute(
                    text(
                        "INSERT INTO grading_city (round_id, code, name_zh, name_en, "
                        "previous_stars, previous_total) VALUES (:r, :code, :zh, :en, :ps, :pt)"
                    ),
                    {
                        "r": round_id,
                        "code": city.code,
                        "zh": city.name_zh,
                        "en": city.name_en,
                        "ps": city.previous_stars,
                        "pt": city.previous_total,
                    },
                )
            audit(
                conn,
                actor,
                "round.create",
                round_id,
                round_id,
                None,
                {
                    "title": title,
                    "year": year,
                    "catalogue": f"{catalogue.id} {catalogue.version}",
                    "policy": policy.id,
                    "cities": codes,
                },
            )
    except IntegrityError:  # created by someone else at the same moment
        raise Conflict(f"round {round_id!r} exists already") from None
    return get_round(engine, round_id)


def get_round(engine: Engine, round_id: str) -> Round:
    """A round.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        return as_round(round_row(conn, round_id))


def status(engine: Engine, round_id: str) -> str:
    """Where a round is in its lifecycle (a cheap read: no catalogue or policy parsed).

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT status FROM grading_round WHERE id = :id"), {"id": round_id}
        ).scalar()
    if found is None:
        raise NotFound(f"no grading round {round_id!r}")
    return str(found)


def list_rounds(engine: Engine) -> list[Round]:
    """Every round, newest year first."""
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM grading_round ORDER BY year DESC, id")).scalars()
        return [as_round(round_row(conn, i)) for i in list(ids)]


def cities(engine: Engine, round_id: str) -> list[CityEntry]:
    """The cities of a round, by code.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        round_row(conn, round_id)
        return [CityEntry(**c) for c in city_rows(conn, round_id)]


def set_policy(engine: Engine, actor: Actor, round_id: str, policy: AwardPolicy) -> None:
    """Replace a round's award policy (admin; only in a draft, so that reviewers see it)."""
    require(actor, "admin")
    require_round(actor, round_id)
    with engine.begin() as conn:
        row = round_row(conn, round_id, lock=True)
        require_draft(row, "its policy")
        conn.execute(
            text("UPDATE grading_round SET policy = CAST(:p AS jsonb) WHERE id = :id"),
            {"p": model_json(policy), "id": round_id},
        )
        audit(
            conn,
            actor,
            "round.policy",
            round_id,
            round_id,
            row.policy,
            policy.model_dump(mode="json"),
        )


def link_previous(
    engine: Engine, actor: Actor, round_id: str, previous_id: str | None, reason: str
) -> bool:
    """Link the round a committee compares this one with (a final round of an earlier year), or
    unlink it with None. Admin, in a draft; audited with the reason. Returns whether it changed.

    Raises:
        Forbidden: below admin. Conflict: this round is not a draft, or the other is not final.
        NotFound: no such round. InvalidInput: no reason, itself, or not an earlier year.
    """
    require(actor, "admin")
    require_round(actor, round_id)
    if not reason.strip():
        raise InvalidInput(
            "linking the previous round needs its reason (it goes into the audit log)"
        )
    with engine.begin() as conn:
        row = round_row(conn, round_id, lock=True)
        require_draft(row, "its previous round")
        if previous_id is not None:
            if previous_id == round_id:
                raise InvalidInput(f"round {round_id} cannot be its own previous round")
            prev = round_row(conn, previous_id)
            if prev.status != "final":
                raise Conflict(
                    f"round {previous_id} is {prev.status}: only a final round, whose results are "
                    "frozen, can be compared with"
                )
            if prev.year >= row.year:
                raise InvalidInput(
                    f"round {previous_id} is of {prev.year}, not earlier than {round_id} "
                    f"({row.year})"
                )
        if row.previous_round_id == previous_id:
            return False
        conn.execute(
            text("UPDATE grading_round SET previous_round_id = :p WHERE id = :id"),
            {"p": previous_id, "id": round_id},
        )
        audit(
            conn,
            actor,
            "round.previous",
            round_id,
            round_id,
            {"previous_round": row.previous_round_id},
            {"previous_round": previous_id, "reason": reason.strip()},
        )
    return True


def move(engine: Engine, actor: Actor, round_id: str, to: str, reason: str) -> Round:
    """Move a round along its lifecycle (see MOVES and ROLE_TO_MOVE), with the reason; finalising
    freezes its results. Four eyes: whoever submitted a round does not review it, and whoever
    reviewed it does not make it final.

    Raises:
        InvalidInput: unknown status, or no reason. Conflict: a move the lifecycle does not
        allow, or required values missing. Forbidden: a role too weak for this move, or the
        same person twice.
    """
    if to not in STATUSES:
        raise InvalidInput(f"unknown status {to!r}; statuses are {', '.join(STATUSES)}")
    if not reason or not reason.strip():
        raise InvalidInput("a status change needs its reason (it goes into the audit log)")
    require(actor, ROLE_TO_MOVE[to])
    require_round(actor, round_id)
    with engine.begin() as conn:
        row = round_row(conn, round_id, lock=True)
        if (row.status, to) not in MOVES:
            allowed = sorted(b for (a, b) in MOVES if a == row.status)
            raise Conflict(
                f"round {round_id} is {row.status}; it can move to "
                f"{', '.join(allowed) if allowed else 'nothing (final rounds are immutable)'}, "
                f"not {to}"
            )
        if to in FOUR_EYES:
            before = FOUR_EYES[to]
            if _last_mover(conn, round_id, before) == actor.name:
                raise Forbidden(
                    f"four eyes: {actor.name} moved round {round_id} to {before}; someone else "
                    f"must move it to {to}"
                )
        rnd = as_round(row)
        if to in ("submitted", "final"):
            require_complete(conn, rnd, to)
            require_fresh(conn, round_id, to)
        frozen = digest = None
        if to == "final":
            frozen = compute(conn, rnd).to_json()
            digest = hashlib.sha256(frozen).hexdigest()
        conn.execute(
            text(
                "UPDATE grading_round SET status = :to, results = CAST(:res AS jsonb), "
                "results_sha256 = :sha WHERE id = :id"
            ),
            {
                "to": to,
                "res": None if frozen is None else frozen.decode(),
                "sha": digest,
                "id": round_id,
            },
        )
        change: dict[str, Any] = {"status": to, "reason": reason.strip()}
        if digest is not None:
            change["results_sha256"] = digest
        audit(conn, actor, "round.status", round_id, round_id, row.status, change)
    return get_round(engine, round_id)


def _last_mover(conn: Connection, round_id: str, status: str) -> str | None:
    """Who last moved the round to `status`."""
    return conn.execute(
        text(
            "SELECT actor FROM audit_log WHERE round_id = :r AND action = 'round.status' "
            "AND (new ->> 'status' = :s OR new #>> '{}' = :s) ORDER BY id DESC LIMIT 1"
        ),
        {"r": round_id, "s": status},
    ).scalar()
