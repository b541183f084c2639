"""Who may change grading data: API keys, roles, and the append-only audit log.

Roles, weakest first: viewer (reads), assessor (enters values for the cities assigned to the key),
reviewer (reviews a submitted round), admin (creates rounds, edits the policy, finalises, manages
keys). A key is shown once when created; only its SHA-256 is stored. The command line, which
already holds the database credentials, acts as admin under the name `cli:<user>`.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, Engine, text

from cim.errors import Forbidden, InvalidInput, NotFound, Unauthorized

ROLES = ("viewer", "assessor", "reviewer", "admin")
PREFIX = "cim_"


@dataclass(frozen=True)
class Actor:
    """The caller of a grading operation."""

    name: str
    role: str
    cities: tuple[str, ...] = field(default_factory=tuple)
    rounds: tuple[str, ...] = field(default_factory=tuple)  # empty: every round

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def cli_actor(name: str | None = None) -> Actor:
    """The command line (database access already means full control), named after the person
    at it (`cim grade --as NAME`), else after the login."""
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
    return Actor(f"cli:{name}", "admin")


def require(actor: Actor, role: str, city: str | None = None) -> None:
    """Refuse an actor whose role is too weak, or an assessor outside their cities.

    Raises:
        Forbidden: with what was needed.
    """
    if not actor.at_least(role):
        raise Forbidden(f"{actor.name} has role {actor.role}; this needs {role} or higher")
    if city is not None and actor.role == "assessor" and city not in actor.cities:
        raise Forbidden(f"{actor.name} is not assigned to city {city}")


def require_round(actor: Actor, round_id: str) -> None:
    """Refuse a write outside the rounds the actor's key is for (an assessor key must name
    its rounds).

    Raises:
        Forbidden: another round, or an assessor key that names no round.
    """
    if actor.rounds and round_id not in actor.rounds:
        raise Forbidden(f"{actor.name} is for round(s) {', '.join(actor.rounds)}, not {round_id}")
    if not actor.rounds and actor.role == "assessor":
        raise Forbidden(
            f"{actor.name} is an assessor key that names no round; an admin creates one for the "
            "round (cim grade keys create … --round ROUND)"
        )


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def refuse_reviewer(actor: Actor) -> None:
    """Four eyes: a reviewer checks values and evidence, and never changes them.

    Raises:
        Forbidden: the actor is a reviewer.
    """
    if actor.role == "reviewer":
        raise Forbidden(
            f"{actor.name} is a reviewer: reviewers check values, they do not change them"
        )


def audit(
    conn: Connection,
    actor: Actor,
    action: str,
    round_id: str | None,
    target: str | None,
    old: Any = None,
    new: Any = None,
) -> None:
    """Append one entry to the audit log (in the caller's transaction)."""
    conn.execute(
        text(
            "INSERT INTO audit_log (actor, action, round_id, target, old, new) "
            "VALUES (:actor, :action, :round, :target, CAST(:old AS jsonb), CAST(:new AS jsonb))"
        ),
        {
            "actor": actor.name,
            "action": action,
            "round": round_id,
            "target": target,
            "old": _json(old),
            "new": _json(new),
        },
    )


def record_refusal(
    engine: Engine,
    actor: Actor,
    round_id: str | None,
    target: str,
    status: int,
    detail: str,
    unwritten: int = 0,
) -> None:
    """Write a refused attempt (401, 403, 409) to the audit log, in a transaction of its own
    (the refused one wrote nothing); `unwritten`: refusals of the same caller before it that
    were counted, not written one by one (the API samples those of callers without a key)."""
    new: dict[str, Any] = {"status": status, "why": detail[:500]}
    if unwritten:
        new["unwritten_before"] = unwritten
    with engine.begin() as conn:
        audit(conn, actor, "refused", round_id, target, None, new)


def audit_log(engine: Engine, round_id: str | None = None) -> list[dict[str, Any]]:
    """The audit entries of a round (or all of them), oldest first."""
    sql = text(
        "SELECT id, at, actor, action, round_id, target, old, new FROM audit_log "
        "WHERE CAST(:r AS text) IS NULL OR round_id = :r ORDER BY id"
    )
    with engine.connect() as conn:
        rows = conn.execute(sql, {"r": round_id}).mappings()
        return [{**r, "at": r["at"].astimezone(UTC).isoformat()} for r in rows]


def _json(value: Any) -> str | None:
    import orjson

    return None if value is None else orjson.dumps(value, default=str).decode()


def create_key(
    engine: Engine,
    actor: Actor,
    name: str,
    role: str,
    cities: list[str] | None = None,
    rounds: list[str] | None = None,
) -> tuple[str, str]:
    """A new key: (key id, the secret key to hand over — shown only now), for the given rounds
    (none: every round) and, for an assessor, cities.

    Raises:
        InvalidInput: unknown role, or an assessor key without cities or rounds.
    """
    require(actor, "admin")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    cities = sorted(set(cities or []))
    if role == "assessor" and not cities:
        raise InvalidInput("an assessor key needs the cities it may enter values for (--city)")
    rounds = sorted(set(rounds or []))
    if role == "assessor" and not rounds:
        raise InvalidInput("an assessor key needs the rounds it may enter values in (--round)")
    key_id = secrets.token_hex(4)
    secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_key (id, name, role, cities, rounds, key_sha256) "
                "VALUES (:id, :name, :role, :cities, :rounds, :digest)"
            ),
            {
                "id": key_id,
                "name": name,
                "role": role,
                "cities": cities,
                "rounds": rounds,
                "digest": _digest(secret),
            },
        )
        audit(
            conn,
            actor,
            "key.create",
            None,
            key_id,
            None,
            {"name": name, "role": role, "cities": cities, "rounds": rounds},
        )
    return key_id, secret


def revoke_key(engine: Engine, actor: Actor, key_id: str) -> None:
    """Revoke a key; it stops working at once.

    Raises:
        NotFound: no such active key.
    """
    require(actor, "admin")
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "UPDATE api_key SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL "
                "RETURNING name"
            ),
            {"id": key_id},
        ).first()
        if row is None:
            raise NotFound(f"no active key {key_id!r}")
        audit(conn, actor, "key.revoke", None, key_id, {"name": row.name}, None)


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    """Every key (never the secret, which is not stored)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, name, role, cities, rounds, created_at, revoked_at FROM api_key "
                "ORDER BY created_at, id"
            )
        ).mappings()
        return [dict(r) for r in rows]


def authenticate(engine: Engine, key: str | None) -> Actor:
    """The actor a key belongs to.

    Raises:
        Unauthorized: no key, a malformed key, an unknown or revoked key.
    """
    if not key:
        raise Unauthorized("this needs an API key (header 'Authorization: Bearer <key>')")
    parts = key.split("_", 2)
    if len(parts) != 3 or f"{parts[0]}_" != PREFIX or len(parts[1]) != 8:
        raise Unauthorized("the API key is not valid")
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT name, role, cities, rounds, key_sha256 FROM api_key "
                "WHERE id = :id AND revoked_at IS NULL"
            ),
            {"id": parts[1]},
        ).first()
    if row is None or not hmac.compare_digest(row.key_sha256, _digest(key)):
        raise Unauthorized("the API key is not valid")
    return Actor(f"key:{parts[1]} ({row.name})", row.role, tuple(row.cities), tuple(row.rounds))
