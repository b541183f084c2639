"""A round as the database holds it, shared by the modules that read or change rounds (`rounds`,
`values`, `evidence`, `outcome`): its row with the frozen catalogue and policy, the rule that
only a draft changes, and its cities and values as stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection, text

from cim.errors import Conflict, NotFound
from grading.awards import AwardPolicy
from grading.catalogue import STORED, Catalogue


@dataclass(frozen=True)
class Round:
    """A round as stored."""

    id: str
    title: str
    year: int
    status: str
    catalogue: Catalogue
    policy: AwardPolicy
    created_by: str
    created_at: Any
    results: dict[str, Any] | None  # a final round's frozen results, as stored
    results_sha256: str | None
    previous_round_id: str | None = None  # the round it is compared with

    def summary(self) -> dict[str, Any]:
        """The round without its catalogue and policy in full, as JSON-ready data."""
        return {
            "id": self.id,
            "title": self.title,
            "year": self.year,
            "status": self.status,
            "catalogue": {"id": self.catalogue.id, "version": self.catalogue.version},
            "policy": self.policy.id,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "results_sha256": self.results_sha256,
            "previous_round": self.previous_round_id,
        }


def model_json(model: BaseModel) -> str:
    """A catalogue or policy as the JSON a round keeps a copy of."""
    return orjson.dumps(model.model_dump(mode="json")).decode()


_ROUND = (
    "SELECT id, title, year, status, catalogue, policy, created_by, created_at, results, "
    "results_sha256, previous_round_id FROM grading_round WHERE id = :id"
)


def round_row(conn: Connection, round_id: str, lock: bool = False) -> Any:
    """A round's row (locked for update when `lock`, so that changes to it queue up).

    Raises:
        NotFound: no such round.
    """
    sql = _ROUND + " FOR UPDATE" if lock else _ROUND  # noqa: S608 (constant text)
    row = conn.execute(text(sql), {"id": round_id}).first()
    if row is None:
        raise NotFound(f"no grading round {round_id!r}")
    return row


def as_round(row: Any) -> Round:
    """The round of a row, its catalogue and policy parsed."""
    return Round(
        row.id,
        row.title,
        row.year,
        row.status,
        Catalogue.model_validate(row.catalogue, context=STORED),
        AwardPolicy.model_validate(row.policy),
        row.created_by,
        row.created_at,
        row.results,
        row.results_sha256,
        row.previous_round_id,
    )


def require_draft(row: Any, what: str) -> None:
    """Refuse a change to a round that is no longer a draft.

    Raises:
        Conflict: the round is submitted, reviewed or final.
    """
    if row.status == "final":
        raise Conflict(f"round {row.id} is final: {what} cannot change")
    if row.status != "draft":
        raise Conflict(
            f"round {row.id} is {row.status}: {what} changes only in a draft round (a reviewer "
            f"can send it back to draft)"
        )


def require_city(conn: Connection, round_id: str, city: str) -> None:
    """Refuse a city that is not in the round.

    Raises:
        NotFound: naming both.
    """
    if not conn.execute(
        text("SELECT 1 FROM grading_city WHERE round_id = :r AND code = :c"),
        {"r": round_id, "c": city},
    ).first():
        raise NotFound(f"no city {city!r} in round {round_id!r}")


def city_rows(conn: Connection, round_id: str) -> list[dict[str, Any]]:
    """The cities of a round by code: code, names, previous stars and total."""
    sql = text(
        "SELECT code, name_zh, name_en, previous_stars, previous_total FROM grading_city "
        "WHERE round_id = :r ORDER BY code"
    )
    return [dict(r) for r in conn.execute(sql, {"r": round_id}).mappings()]


def stored_values(conn: Connection, round_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """city -> indicator -> the value that counts, with its unit, source and evidence.

    A city may have two values of an indicator: the one it reported and the one computed from
    the city model. The reported one counts unless the committee chose the computed one (or
    there is no reported one); the other is kept beside it as `alternative`, and the committee's
    choice with its reason as `choice`.
    """
    rows = conn.execute(
        text(
            "SELECT v.city_code, v.indicator_id, v.kind, v.value, v.unit, v.source, v.link, "
            "v.note, v.evidence_sha256, e.filename AS evidence_filename, v.computed, "
            "v.entered_by, v.entered_at FROM grading_value v LEFT JOIN grading_evidence e "
            "ON e.round_id = v.round_id AND e.sha256 = v.evidence_sha256 "
            "WHERE v.round_id = :r ORDER BY v.city_code, v.indicator_id, v.kind DESC"
        ),
        {"r": round_id},
    ).mappings()
    kinds: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        entry = dict(r)
        entry["entered_at"] = entry["entered_at"].astimezone(UTC).isoformat()
        key = (entry.pop("city_code"), entry.pop("indicator_id"))
        kinds.setdefault(key, {})[entry.pop("kind")] = entry
    choices = {
        (c.city_code, c.indicator_id): {
            "counts": c.counts,
            "reason": c.reason,
            "by": c.chosen_by,
            "at": c.chosen_at.astimezone(UTC).isoformat(),
        }
        for c in conn.execute(
            text(
                "SELECT city_code, indicator_id, counts, reason, chosen_by, chosen_at "
                "FROM grading_choice WHERE round_id = :r"
            ),
            {"r": round_id},
        )
    }
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (city, indicator), both in kinds.items():
        choice = choices.get((city, indicator))
        if choice and choice["counts"] in both:
            counts = choice["counts"]
        else:
            counts = "reported" if "reported" in both else "computed"
        entry = dict(both[counts])
        other = "computed" if counts == "reported" else "reported"
        if other in both:
            entry["alternative"] = {"kind": other, **both[other]}
        if choice:
            entry["choice"] = choice
        out.setdefault(city, {})[indicator] = entry
    return out
