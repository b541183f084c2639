"""What a city's CIM platform offers: the seven function groups that CJJ/T 315-2022 §4.3.2
requires of a city-level platform, each declared with its evidence.

"CIM platform in place" is then a fact with evidence, not "this database holds buildings": the
platform is in place when all seven groups are declared, each with an evidence file (an
acceptance report, a screenshot, an interface document), and the value lists which are there and
which are missing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, text

from cim.errors import InvalidInput, NotFound
from grading.access import Actor, audit, refuse_reviewer, require, require_round
from grading.evidence import EvidenceFile, store_evidence
from grading.store import require_city, require_draft, round_row

RULE = "CJJ/T 315-2022 §4.3.2"
# id -> (Chinese, English), in the standard's order
FUNCTION_GROUPS: dict[str, tuple[str, str]] = {
    "data_management": ("数据汇聚与管理", "data aggregation and management"),
    "scene_configuration": ("场景配置", "scene configuration"),
    "query_visualisation": ("数据查询与可视化", "data query and visualisation"),
    "data_sharing": ("数据共享与交换", "data sharing and exchange"),
    "analysis": ("分析应用", "analysis"),
    "operation_service": ("运行与服务", "operation and service"),
    "development_interfaces": ("开发接口", "development interfaces"),
}


def _check_group(group: str) -> None:
    if group not in FUNCTION_GROUPS:
        raise InvalidInput(
            f"unknown platform function group {group!r}; {RULE} names: "
            + ", ".join(f"{k} ({v[0]})" for k, v in FUNCTION_GROUPS.items())
        )


def declare_function(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    group: str,
    evidence: EvidenceFile | str,
    note: str = "",
) -> bool:
    """Declare that the city's platform offers a function group, with its evidence (a file to
    store, or the SHA-256 of one already in the round). Returns whether anything changed.

    Raises:
        Forbidden: below assessor, another city, or a reviewer. Conflict: not a draft.
        NotFound: no such city in the round, or no such evidence. InvalidInput: unknown group.
    """
    require(actor, "assessor", city)
    require_round(actor, round_id)
    refuse_reviewer(actor)
    _check_group(group)
    with engine.begin() as conn:
        require_draft(round_row(conn, round_id, lock=True), "its platform functions")
        require_city(conn, round_id, city)
        if isinstance(evidence, EvidenceFile):
            sha = store_evidence(conn, actor, round_id, evidence)
        else:
            sha = evidence
            if not conn.execute(
                text("SELECT 1 FROM grading_evidence WHERE round_id = :r AND sha256 = :s"),
                {"r": round_id, "s": sha},
            ).first():
                raise NotFound(f"no evidence {sha!r} in round {round_id!r}; upload it first")
        old = _one(conn, round_id, city, group)
        new = {"evidence_sha256": sha, "note": note.strip()}
        if old == new:
            return False
        conn.execute(
            text(
                "INSERT INTO grading_platform_function (round_id, city_code, function_group, "
                "evidence_sha256, note, declared_by) VALUES (:r, :c, :g, :sha, :note, :by) "
                "ON CONFLICT (round_id, city_code, function_group) DO UPDATE SET "
                "evidence_sha256 = EXCLUDED.evidence_sha256, note = EXCLUDED.note, "
                "declared_by = EXCLUDED.declared_by, declared_at = now()"
            ),
            {
                "r": round_id,
                "c": city,
                "g": group,
                "sha": sha,
                "note": new["note"],
                "by": actor.name,
            },
        )
        audit(conn, actor, "platform.declare", round_id, f"{city}/{group}", old, new)
    return True


def withdraw_function(
    engine: Engine, actor: Actor, round_id: str, city: str, group: str, reason: str
) -> None:
    """Withdraw a declared function group (audited, with the reason).

    Raises:
        Forbidden, Conflict as for `declare_function`; NotFound: not declared;
        InvalidInput: no reason.
    """
    require(actor, "assessor", city)
    require_round(actor, round_id)
    refuse_reviewer(actor)
    _check_group(group)
    if not reason.strip():
        raise InvalidInput("withdrawing a platform function needs its reason")
    with engine.begin() as conn:
        require_draft(round_row(conn, round_id, lock=True), "its platform functions")
        old = _one(conn, round_id, city, group)
        if old is None:
            raise NotFound(f"city {city} has not declared platform function {group!r}")
        conn.execute(
            text(
                "DELETE FROM grading_platform_function WHERE round_id = :r AND city_code = :c "
                "AND function_group = :g"
            ),
            {"r": round_id, "c": city, "g": group},
        )
        audit(
            conn,
            actor,
            "platform.withdraw",
            round_id,
            f"{city}/{group}",
            old,
            {"reason": reason.strip()},
        )


def _one(conn: Connection, round_id: str, city: str, group: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            text(
                "SELECT evidence_sha256, note FROM grading_platform_function WHERE round_id = :r "
                "AND city_code = :c AND function_group = :g"
            ),
            {"r": round_id, "c": city, "g": group},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def declared_functions(conn: Connection, round_id: str, city: str) -> list[dict[str, Any]]:
    """The function groups a city declared, in the standard's order, with their evidence."""
    rows = {
        r["function_group"]: r
        for r in conn.execute(
            text(
                "SELECT f.function_group, f.evidence_sha256, e.filename, f.note, f.declared_by, "
                "f.declared_at FROM grading_platform_function f JOIN grading_evidence e "
                "ON e.round_id = f.round_id AND e.sha256 = f.evidence_sha256 "
                "WHERE f.round_id = :r AND f.city_code = :c"
            ),
            {"r": round_id, "c": city},
        ).mappings()
    }
    return [
        {
            "group": g,
            "name_zh": FUNCTION_GROUPS[g][0],
            "name_en": FUNCTION_GROUPS[g][1],
            "evidence_sha256": rows[g]["evidence_sha256"],
            "file": rows[g]["filename"],
            "note": rows[g]["note"],
            "declared_by": rows[g]["declared_by"],
            "declared_at": rows[g]["declared_at"].isoformat(timespec="seconds"),
        }
        for g in FUNCTION_GROUPS
        if g in rows
    ]


def platform_functions(engine: Engine, round_id: str, city: str) -> list[dict[str, Any]]:
    """`declared_functions` in a connection of its own.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        round_row(conn, round_id)
        return declared_functions(conn, round_id, city)


def assess(functions: list[dict[str, Any]]) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """(in place, inputs, evidence) of "CIM platform in place" from the declared groups: in place
    when all seven are declared with evidence."""
    offered = [f["group"] for f in functions]
    missing = [g for g in FUNCTION_GROUPS if g not in offered]
    inputs = {"offered": len(offered), "of": len(FUNCTION_GROUPS), "missing": missing}
    evidence = {
        "indicator": "cim_platform",
        "rule": f"{RULE}: a city-level CIM platform offers all seven function groups",
        "functions": functions,
        "missing": [
            {"group": g, "name_zh": FUNCTION_GROUPS[g][0], "name_en": FUNCTION_GROUPS[g][1]}
            for g in missing
        ],
    }
    return not missing, inputs, evidence
