"""Computed values still resting on what they were computed from: a value computed over a city's
area since declared again (or from another file), or "CIM platform in place" since the city's
function groups changed, is stale; a round is not submitted or made final with stale values."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from cim.errors import Conflict
from grading.areas import get_area
from grading.platform import declared_functions


def _why(conn: Connection, round_id: str, city: str, computed: dict[str, Any]) -> str | None:
    if "functions" in computed:  # the platform: the groups and evidence it was computed from
        then = {(f["group"], f["evidence_sha256"]) for f in computed["functions"]}
        now = {(f["group"], f["evidence_sha256"]) for f in declared_functions(conn, round_id, city)}
        return None if then == now else "the platform's function groups changed since"
    used = (computed.get("parameters") or {}).get("area")
    if not isinstance(used, dict):
        return None
    area = get_area(conn, round_id, city)
    if area is None:
        return "its area is no longer declared"
    same = (used.get("sha256"), used.get("declared_at")) == (
        area.evidence_sha256,
        area.declared_at.isoformat(),
    )
    return None if same else f"the city's area was declared again since ({area.filename})"


def stale_values(conn: Connection, round_id: str) -> list[str]:
    """'city/indicator: why' for each computed value that no longer rests on its inputs."""
    rows = conn.execute(
        text(
            "SELECT city_code, indicator_id, computed FROM grading_value WHERE round_id = :r "
            "AND kind = 'computed' AND computed IS NOT NULL ORDER BY city_code, indicator_id"
        ),
        {"r": round_id},
    ).all()
    out = []
    for city, indicator, computed in rows:
        why = _why(conn, round_id, city, computed)
        if why:
            out.append(f"{city}/{indicator}: {why}")
    return out


def require_fresh(conn: Connection, round_id: str, to: str) -> None:
    """Refuse to submit or finalise a round with stale computed values.

    Raises:
        Conflict: naming each value and why, and what to run.
    """
    stale = stale_values(conn, round_id)
    if stale:
        raise Conflict(
            f"round {round_id} cannot be {to}: {len(stale)} computed value(s) rest on what has "
            f"changed since ({'; '.join(stale)}). Compute them again: cim grade "
            "compute-cim-indicators ROUND --city CITY (or POST .../cim-indicators)"
        )
