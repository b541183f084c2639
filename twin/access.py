"""Keys of the twin: who may read (when reads are private) and write SensorThings.

Roles: `reader` (reads), `device` (adds the Observations of its Things' Datastreams, over HTTP
and over MQTT), `manager` (every twin write). A key is shown once, when created; CIM stores its
SHA-256, for HTTP, and the PBKDF2 hash the MQTT broker checks (mosquitto's own format), so the
same key is a device's broker password. Revoking a key ends both at once: the broker's
password and access files are written again from this table (twin.broker).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from cim.errors import InvalidInput, NotFound
from twin.broker import DeviceAccess, LocalBroker, hash_password
from twin.store import Writer

ROLES = ("reader", "device", "manager")
PREFIX = "cimt_"


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    role: str
    things: tuple[int, ...]
    created_at: Any
    revoked_at: Any


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    engine: Engine, name: str, role: str, things: list[int] | None = None
) -> tuple[str, str]:
    """A new key: (its id, which is also its MQTT user name; the secret, shown only now).

    Raises:
        InvalidInput: an unknown role, a device key without Things, Things that do not exist.
    """
    things = sorted(set(things or []))
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role == "device" and not things:
        raise InvalidInput("a device key needs the Things it writes for (--thing ID)")
    if role != "device" and things:
        raise InvalidInput(f"a {role} key is not scoped to Things; only device keys are")
    if not name.strip():
        raise InvalidInput("a key needs a name that says whose it is")
    key_id = secrets.token_hex(4)
    secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    with engine.begin() as conn:
        found = set(
            conn.execute(
                text("SELECT id FROM twin_thing WHERE id = ANY(:t)"), {"t": things}
            ).scalars()
        )
        missing = [t for t in things if t not in found]
        if missing:
            raise InvalidInput(f"Thing {', '.join(map(str, missing))} does not exist")
        conn.execute(
            text(
                "INSERT INTO twin_key (id, name, role, things, key_sha256, mqtt_hash) "
                "VALUES (:id, :name, :role, :things, :sha, :mqtt)"
            ),
            {
                "id": key_id,
                "name": name,
                "role": role,
                "things": things,
                "sha": _digest(secret),
                "mqtt": hash_password(secret),
            },
        )
    return key_id, secret


def revoke_key(engine: Engine, key_id: str) -> None:
    """Revoke a key: HTTP refuses it at once; the caller rewrites the broker's access.

    Raises:
        NotFound: no such active key.
    """
    with engine.begin() as conn:
        done = conn.execute(
            text(
                "UPDATE twin_key SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL "
                "RETURNING id"
            ),
            {"id": key_id},
        ).first()
    if done is None:
        raise NotFound(f"no active twin key {key_id!r}")


def list_keys(engine: Engine) -> list[KeyInfo]:
    with engine.connect() as conn:
        return [
            KeyInfo(r.id, r.name, r.role, tuple(r.things), r.created_at, r.revoked_at)
            for r in conn.execute(
                text(
                    "SELECT id, name, role, things, created_at, revoked_at FROM twin_key "
                    "ORDER BY created_at, id"
                )
            )
        ]


def authenticate(engine: Engine, key: str) -> Writer | None:
    """The writer a key stands for, or None for an unknown or revoked key."""
    if not key.startswith(PREFIX):
        return None
    key_id = key[len(PREFIX) :].split("_", 1)[0]
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT name, role, things, key_sha256 FROM twin_key "
                "WHERE id = :id AND revoked_at IS NULL"
            ),
            {"id": key_id},
        ).first()
    if row is None or not hmac.compare_digest(row.key_sha256, _digest(key)):
        return None
    return Writer(f"key:{key_id} ({row.name})", row.role, tuple(row.things))


def device_access(engine: Engine) -> list[DeviceAccess]:
    """What each active device key may publish to: the Datastreams of its Things (managers
    may publish to every Datastream)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT k.id, k.role, k.mqtt_hash,
                   coalesce(array_agg(d.id ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL),
                            '{}') AS streams
            FROM twin_key k
            LEFT JOIN twin_datastream d
                   ON k.role = 'device' AND d.thing_id = ANY(k.things)
            WHERE k.revoked_at IS NULL AND k.role IN ('device', 'manager')
            GROUP BY k.id, k.role, k.mqtt_hash ORDER BY k.id""")
        ).all()
    return [
        DeviceAccess(r.id, r.mqtt_hash, tuple(r.streams), every=r.role == "manager") for r in rows
    ]


def sync_broker(engine: Engine, broker: LocalBroker) -> str:
    """Write the broker's passwords and access from the keys and Datastreams, and have it
    reload them when it runs. Returns what was done, for the operator."""
    devices = device_access(engine)
    broker.write_access(devices)
    state = "reloaded" if broker.is_running() else "written (the broker is not running)"
    return f"MQTT access for {len(devices)} key(s) {state}"
