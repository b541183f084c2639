"""Evidence files of a round: stored once per content under their SHA-256, named by the values
they support, and served back with their file name and media type."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from cim.errors import InvalidInput, NotFound
from grading.access import Actor, audit, refuse_reviewer, require, require_round
from grading.store import require_draft, round_row

MAX_EVIDENCE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class EvidenceFile:
    """An evidence file to store."""

    filename: str
    content: bytes
    media_type: str = "application/octet-stream"


def add_evidence(engine: Engine, actor: Actor, round_id: str, file: EvidenceFile) -> str:
    """Store an evidence file (once per content); returns its SHA-256.

    Raises:
        InvalidInput: empty or too large. Conflict: the round is not a draft.
    """
    require(actor, "assessor")
    require_round(actor, round_id)
    refuse_reviewer(actor)
    with engine.begin() as conn:
        row = round_row(conn, round_id, lock=True)
        require_draft(row, "its evidence")
        return store_evidence(conn, actor, round_id, file)


def store_evidence(conn: Connection, actor: Actor, round_id: str, file: EvidenceFile) -> str:
    """Store an evidence file in the caller's transaction (once per content); returns its
    SHA-256.

    Raises:
        InvalidInput: empty or too large.
    """
    if not file.content:
        raise InvalidInput(f"evidence {file.filename!r} is empty")
    if len(file.content) > MAX_EVIDENCE_BYTES:
        raise InvalidInput(
            f"evidence {file.filename!r} is {len(file.content):,} bytes; the limit is "
            f"{MAX_EVIDENCE_BYTES:,}"
        )
    name = file.filename.replace("\\", "/").rsplit("/", 1)[-1] or "evidence"
    digest = hashlib.sha256(file.content).hexdigest()
    inserted = conn.execute(
        text(
            "INSERT INTO grading_evidence (round_id, sha256, filename, media_type, size, "
            "content, uploaded_by) VALUES (:r, :s, :f, :m, :n, :c, :by) "
            "ON CONFLICT DO NOTHING RETURNING sha256"
        ),
        {
            "r": round_id,
            "s": digest,
            "f": name,
            "m": file.media_type,
            "n": len(file.content),
            "c": file.content,
            "by": actor.name,
        },
    ).first()
    if inserted:
        audit(
            conn,
            actor,
            "evidence.add",
            round_id,
            digest,
            None,
            {"filename": name, "size": len(file.content), "media_type": file.media_type},
        )
    return digest


def get_evidence(engine: Engine, round_id: str, sha256: str) -> tuple[str, str, bytes]:
    """(file name, media type, content) of an evidence file.

    Raises:
        NotFound: no such file in the round.
    """
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT filename, media_type, content FROM grading_evidence "
                "WHERE round_id = :r AND sha256 = :s"
            ),
            {"r": round_id, "s": sha256},
        ).first()
    if row is None:
        raise NotFound(f"no evidence {sha256!r} in round {round_id!r}")
    return row.filename, row.media_type, bytes(row.content)
