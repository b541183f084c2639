"""Assessment rounds in the database: cities, indicator values with evidence, the lifecycle.

A round freezes a copy of its catalogue and award policy, so later edits to the files do not
change it. Values may change only while the round is a draft; a final round is immutable and
keeps its results with their SHA-256, so a recomputation can be checked against them. Every
change is checked against the caller's role and written to the audit log in the same
transaction.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from cim.errors import Conflict, InvalidInput, NotFound
from grading import cim_indicators
from grading.access import Actor, audit, require
from grading.awards import AwardPolicy
from grading.catalogue import Catalogue, Indicator, Linear, Qualitative, Thresholds, YesNo
from grading.results import round_results

STATUSES = ("draft", "submitted", "reviewed", "final")
# the moves a round can make, and the role each target status needs
MOVES = {
    ("draft", "submitted"),
    ("submitted", "reviewed"),
    ("submitted", "draft"),
    ("reviewed", "draft"),
    ("reviewed", "final"),
}
ROLE_TO_MOVE = {
    "submitted": "reviewer",
    "reviewed": "reviewer",
    "draft": "reviewer",
    "final": "admin",
}
MAX_EVIDENCE_BYTES = 50 * 1024 * 1024
MAX_ABS_VALUE = 1e15  # no indicator needs more; JSON and spreadsheets keep it exact
_YES = {"yes", "y", "true", "1", "是", "有"}
_NO = {"no", "n", "false", "0", "否", "无"}


@dataclass(frozen=True)
class CityEntry:
    """A city in a round."""

    code: str
    name_zh: str
    name_en: str
    previous_stars: int | None = None
    previous_total: float | None = None


@dataclass(frozen=True)
class ValueEntry:
    """One value to enter: where it comes from travels with it."""

    city: str
    indicator: str
    value: Any
    unit: str = ""
    source: str = ""
    link: str | None = None
    note: str | None = None
    evidence_sha256: str | None = None
    computed: dict[str, Any] | None = None
    where: str = ""  # e.g. "values.csv row 7", for error messages


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
    results: dict[str, Any] | None
    results_sha256: str | None

    def summary(self) -> dict[str, Any]:
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
        }


def canonical_json(data: Any) -> bytes:
    """The bytes whose SHA-256 identifies a result: sorted keys, no whitespace."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def _dump(model: Any) -> str:
    return orjson.dumps(model.model_dump(mode="json")).decode()


# ---------------------------------------------------------------- rounds
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
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", round_id or ""):
        raise InvalidInput(
            f"round id {round_id!r}: up to 64 ASCII letters, digits, '-', '_' or '.'"
        )
    if not cities:
        raise InvalidInput(f"round {round_id}: no cities")
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
                    "cat": _dump(catalogue),
                    "pol": _dump(policy),
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


_ROUND = (
    "SELECT id, title, year, status, catalogue, policy, created_by, created_at, results, "
    "results_sha256 FROM grading_round WHERE id = :id"
)


def _round_row(conn: Connection, round_id: str, lock: bool = False) -> Any:
    sql = _ROUND + " FOR UPDATE" if lock else _ROUND  # noqa: S608 (constant text)
    row = conn.execute(text(sql), {"id": round_id}).first()
    if row is None:
        raise NotFound(f"no grading round {round_id!r}")
    return row


def _as_round(row: Any) -> Round:
    return Round(
        row.id,
        row.title,
        row.year,
        row.status,
        Catalogue.model_validate(row.catalogue),
        AwardPolicy.model_validate(row.policy),
        row.created_by,
        row.created_at,
        row.results,
        row.results_sha256,
    )


def get_round(engine: Engine, round_id: str) -> Round:
    """A round.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        return _as_round(_round_row(conn, round_id))


def list_rounds(engine: Engine) -> list[Round]:
    """Every round, newest year first."""
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM grading_round ORDER BY year DESC, id")).scalars()
        return [_as_round(_round_row(conn, i)) for i in list(ids)]


def cities(engine: Engine, round_id: str) -> list[CityEntry]:
    """The cities of a round, by code."""
    with engine.connect() as conn:
        _round_row(conn, round_id)
        rows = conn.execute(
            text(
                "SELECT code, name_zh, name_en, previous_stars, previous_total FROM grading_city "
                "WHERE round_id = :r ORDER BY code"
            ),
            {"r": round_id},
        ).all()
    return [CityEntry(*r) for r in rows]


def _draft(row: Any, what: str) -> None:
    """Refuse a change to a round that is no longer a draft."""
    if row.status == "final":
        raise Conflict(f"round {row.id} is final: {what} cannot change")
    if row.status != "draft":
        raise Conflict(
            f"round {row.id} is {row.status}: {what} changes only in a draft round (a reviewer "
            f"can send it back to draft)"
        )


def set_policy(engine: Engine, actor: Actor, round_id: str, policy: AwardPolicy) -> None:
    """Replace a round's award policy (admin; only in a draft, so that reviewers see it)."""
    require(actor, "admin")
    with engine.begin() as conn:
        row = _round_row(conn, round_id, lock=True)
        _draft(row, "its policy")
        conn.execute(
            text("UPDATE grading_round SET policy = CAST(:p AS jsonb) WHERE id = :id"),
            {"p": _dump(policy), "id": round_id},
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


def move(engine: Engine, actor: Actor, round_id: str, to: str) -> Round:
    """Move a round along its lifecycle (see MOVES and ROLE_TO_MOVE); finalising freezes its
    results.

    Raises:
        InvalidInput: unknown status. Conflict: a move the lifecycle does not allow.
        Forbidden: a role too weak for this move.
    """
    if to not in STATUSES:
        raise InvalidInput(f"unknown status {to!r}; statuses are {', '.join(STATUSES)}")
    require(actor, ROLE_TO_MOVE[to])
    with engine.begin() as conn:
        row = _round_row(conn, round_id, lock=True)
        if (row.status, to) not in MOVES:
            allowed = sorted(b for (a, b) in MOVES if a == row.status)
            raise Conflict(
                f"round {round_id} is {row.status}; it can move to "
                f"{', '.join(allowed) if allowed else 'nothing (final rounds are immutable)'}, "
                f"not {to}"
            )
        results = digest = None
        if to == "final":
            results = _compute(conn, _as_round(row))
            digest = hashlib.sha256(canonical_json(results)).hexdigest()
        conn.execute(
            text(
                "UPDATE grading_round SET status = :to, results = CAST(:res AS jsonb), "
                "results_sha256 = :sha WHERE id = :id"
            ),
            {
                "to": to,
                "res": None if results is None else canonical_json(results).decode(),
                "sha": digest,
                "id": round_id,
            },
        )
        audit(
            conn,
            actor,
            "round.status",
            round_id,
            round_id,
            row.status,
            to if digest is None else {"status": to, "results_sha256": digest},
        )
    return get_round(engine, round_id)


# ---------------------------------------------------------------- values
def coerce_value(ind: Indicator, raw: Any, where: str) -> Any:
    """A raw value (text from a template, or JSON) as the indicator's scoring method needs it.

    Raises:
        InvalidInput: a value the indicator cannot take, naming where it came from.
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    s = ind.scoring
    if isinstance(s, YesNo):
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in _YES:
            return True
        if word in _NO:
            return False
        raise InvalidInput(f"{where}: indicator {ind.id} takes yes or no, not {raw!r}")
    if isinstance(s, Qualitative):
        grade = str(raw).strip()
        if grade not in s.levels:
            raise InvalidInput(
                f"{where}: indicator {ind.id} takes one of {', '.join(s.best_first())}, not {raw!r}"
            )
        return grade
    assert isinstance(s, Thresholds | Linear)
    if isinstance(raw, bool):
        raise InvalidInput(f"{where}: indicator {ind.id} takes a number, not {raw!r}")
    try:
        number = float(str(raw).strip().rstrip("%")) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{where}: indicator {ind.id} takes a number ({ind.unit or 'no unit'}), not {raw!r}"
        ) from None
    if not math.isfinite(number) or abs(number) > MAX_ABS_VALUE:
        raise InvalidInput(
            f"{where}: indicator {ind.id}: {raw!r} is not a finite number within ±{MAX_ABS_VALUE:g}"
        )
    return number


def set_values(
    engine: Engine,
    actor: Actor,
    round_id: str,
    entries: list[ValueEntry],
    evidence: list[EvidenceFile] = (),  # type: ignore[assignment]
) -> int:
    """Enter values (all or none), storing their evidence files first in the same transaction;
    returns how many values changed. Each change is audited.

    Raises:
        Forbidden: role too weak or a city not assigned. Conflict: the round is not a draft.
        InvalidInput: unknown city or indicator, a value of the wrong kind, unknown evidence.
    """
    require(actor, "assessor")
    changed = 0
    with engine.begin() as conn:
        row = _round_row(conn, round_id, lock=True)
        _draft(row, "its values")
        for file in evidence:
            _store_evidence(conn, actor, round_id, file)
        catalogue = Catalogue.model_validate(row.catalogue)
        indicators = {i.id: i for i in catalogue.indicators}
        codes = set(
            conn.execute(
                text("SELECT code FROM grading_city WHERE round_id = :r"), {"r": round_id}
            ).scalars()
        )
        for e in entries:
            where = e.where or f"city {e.city}, indicator {e.indicator}"
            if e.city not in codes:
                raise InvalidInput(f"{where}: city {e.city!r} is not in round {round_id}")
            require(actor, "assessor", e.city)
            ind = indicators.get(e.indicator)
            if ind is None:
                raise InvalidInput(
                    f"{where}: catalogue {catalogue.id} has no indicator {e.indicator!r}"
                )
            value = coerce_value(ind, e.value, where)
            if e.unit and ind.unit and e.unit != ind.unit:
                raise InvalidInput(
                    f"{where}: indicator {ind.id} is measured in {ind.unit!r}, not {e.unit!r}"
                )
            if e.link and not re.match(r"https?://", e.link, re.IGNORECASE):
                raise InvalidInput(f"{where}: link {e.link!r} is not an http(s) address")
            if (
                e.evidence_sha256
                and not conn.execute(
                    text("SELECT 1 FROM grading_evidence WHERE round_id = :r AND sha256 = :s"),
                    {"r": round_id, "s": e.evidence_sha256},
                ).first()
            ):
                raise InvalidInput(f"{where}: no evidence {e.evidence_sha256} in round {round_id}")
            new = {
                "value": value,
                "unit": ind.unit,
                "source": e.source,
                "link": e.link,
                "note": e.note,
                "evidence_sha256": e.evidence_sha256,
                "computed": e.computed,
            }
            old_row = (
                conn.execute(
                    text(
                        "SELECT value, unit, source, link, note, evidence_sha256, computed "
                        "FROM grading_value WHERE round_id = :r AND city_code = :c "
                        "AND indicator_id = :i"
                    ),
                    {"r": round_id, "c": e.city, "i": ind.id},
                )
                .mappings()
                .first()
            )
            old = dict(old_row) if old_row else None
            if old == new:
                continue
            conn.execute(
                text(
                    "INSERT INTO grading_value (round_id, city_code, indicator_id, value, unit, "
                    "source, link, note, evidence_sha256, computed, entered_by) VALUES "
                    "(:r, :c, :i, CAST(:v AS jsonb), :unit, :source, :link, :note, :ev, "
                    "CAST(:computed AS jsonb), :by) ON CONFLICT (round_id, city_code, "
                    "indicator_id) DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit, "
                    "source = EXCLUDED.source, link = EXCLUDED.link, note = EXCLUDED.note, "
                    "evidence_sha256 = EXCLUDED.evidence_sha256, computed = EXCLUDED.computed, "
                    "entered_by = EXCLUDED.entered_by, entered_at = now()"
                ),
                {
                    "r": round_id,
                    "c": e.city,
                    "i": ind.id,
                    "v": orjson.dumps(value).decode(),
                    "unit": ind.unit,
                    "source": e.source,
                    "link": e.link,
                    "note": e.note,
                    "ev": e.evidence_sha256,
                    "computed": None if e.computed is None else orjson.dumps(e.computed).decode(),
                    "by": actor.name,
                },
            )
            audit(conn, actor, "value.set", round_id, f"{e.city}/{ind.id}", old, new)
            changed += 1
    return changed


def values(engine: Engine, round_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """city -> indicator -> the stored value with its unit, source and evidence."""
    with engine.connect() as conn:
        _round_row(conn, round_id)
        return _values(conn, round_id)


def _values(conn: Connection, round_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    rows = conn.execute(
        text(
            "SELECT v.city_code, v.indicator_id, v.value, v.unit, v.source, v.link, v.note, "
            "v.evidence_sha256, e.filename AS evidence_filename, v.computed, v.entered_by, "
            "v.entered_at FROM grading_value v LEFT JOIN grading_evidence e "
            "ON e.round_id = v.round_id AND e.sha256 = v.evidence_sha256 "
            "WHERE v.round_id = :r ORDER BY v.city_code, v.indicator_id"
        ),
        {"r": round_id},
    ).mappings()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        entry = dict(r)
        entry["entered_at"] = entry["entered_at"].astimezone(UTC).isoformat()
        out.setdefault(entry.pop("city_code"), {})[entry.pop("indicator_id")] = entry
    return out


# ---------------------------------------------------------------- evidence
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
    with engine.begin() as conn:
        row = _round_row(conn, round_id, lock=True)
        _draft(row, "its evidence")
        return _store_evidence(conn, actor, round_id, file)


def _store_evidence(conn: Connection, actor: Actor, round_id: str, file: EvidenceFile) -> str:
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


# ---------------------------------------------------------------- audit
def audit_log(engine: Engine, round_id: str | None = None) -> list[dict[str, Any]]:
    """The audit entries of a round (or all of them), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, at, actor, action, round_id, target, old, new FROM audit_log "
                "WHERE CAST(:r AS text) IS NULL OR round_id = :r ORDER BY id"
            ),
            {"r": round_id},
        ).mappings()
        return [{**r, "at": r["at"].astimezone(UTC).isoformat()} for r in rows]


# ---------------------------------------------------------------- results
_RESULTS: dict[tuple[Any, ...], bytes] = {}  # computed results, as JSON
_RESULTS_LOCK = threading.Lock()


def results(
    engine: Engine,
    round_id: str,
    policy: AwardPolicy | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    """Scores, ranking and allocation of a round; with another policy or catalogue (e.g. a
    changed weight), a what-if that changes nothing stored.

    A final round's results are the frozen document, checked against its SHA-256.

    Raises:
        Conflict: a final round whose stored results do not match their hash.
    """
    with engine.connect() as connection:
        # one snapshot: the round, its values and its newest audit entry agree
        conn = connection.execution_options(isolation_level="REPEATABLE READ")
        newest = conn.execute(
            text("SELECT id, at FROM audit_log WHERE round_id = :r ORDER BY id DESC LIMIT 1"),
            {"r": round_id},
        ).first()
        rnd = _as_round(_round_row(conn, round_id))
        if rnd.status == "final" and policy is None and catalogue is None:
            assert rnd.results is not None
            digest = hashlib.sha256(canonical_json(rnd.results)).hexdigest()
            if digest != rnd.results_sha256:
                raise Conflict(
                    f"round {round_id}: the stored results ({digest[:12]}) do not match the "
                    f"SHA-256 frozen with them ({(rnd.results_sha256 or '')[:12]})"
                )
            return rnd.results
        if policy is not None or catalogue is not None:
            return _compute(conn, rnd, policy, catalogue)
        # every change to a round is in its audit log: the newest entry (its id, and its time,
        # which a restored older database cannot repeat) says whether results computed before
        # are still the round's (dashboards read them many times a second)
        stamp = (newest.id, newest.at.isoformat()) if newest is not None else None
        key = (engine.url.render_as_string(hide_password=True), round_id, stamp, rnd.status)
        with _RESULTS_LOCK:
            kept = _RESULTS.get(key)
        if kept is not None:
            return dict(orjson.loads(kept))
        computed = _compute(conn, rnd)
    with _RESULTS_LOCK:
        _RESULTS[key] = orjson.dumps(computed)
        while len(_RESULTS) > 64:
            _RESULTS.pop(next(iter(_RESULTS)))
    return computed


def verify(engine: Engine, round_id: str) -> tuple[bool, str, str]:
    """Recompute a final round from its stored values, catalogue and policy: (identical?, the
    frozen SHA-256, the recomputed one).

    Raises:
        Conflict: the round is not final.
    """
    with engine.connect() as conn:
        rnd = _as_round(_round_row(conn, round_id))
        if rnd.status != "final":
            raise Conflict(f"round {round_id} is {rnd.status}; only a final round has results")
        again = hashlib.sha256(canonical_json(_compute(conn, rnd))).hexdigest()
    frozen = rnd.results_sha256 or ""
    return again == frozen, frozen, again


def _compute(
    conn: Connection,
    rnd: Round,
    policy: AwardPolicy | None = None,
    catalogue: Catalogue | None = None,
) -> dict[str, Any]:
    rows = conn.execute(
        text(
            "SELECT code, name_zh, name_en, previous_stars, previous_total FROM grading_city "
            "WHERE round_id = :r ORDER BY code"
        ),
        {"r": rnd.id},
    ).all()
    cities = [
        {
            "code": r[0],
            "name_zh": r[1],
            "name_en": r[2],
            "previous_stars": r[3],
            "previous_total": r[4],
        }
        for r in rows
    ]
    meta = {"id": rnd.id, "title": rnd.title, "year": rnd.year}
    return round_results(
        meta, catalogue or rnd.catalogue, policy or rnd.policy, cities, _values(conn, rnd.id)
    )


def enter_cim_indicators(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    model_city: str | None = None,
    params: cim_indicators.Parameters | None = None,
) -> list[tuple[str, cim_indicators.Computed]]:
    """Compute, from the city model, the indicators the round's catalogue marks
    `computed_from_cim`, and enter them as the city's values with the query as evidence.
    Returns (indicator id, computed) for each.

    Raises:
        InvalidInput: the catalogue has no such indicators. NotFound: no model of the city.
    """
    rnd = get_round(engine, round_id)
    wanted = [(i.id, i.computed_from_cim) for i in rnd.catalogue.indicators if i.computed_from_cim]
    if not wanted:
        raise InvalidInput(f"catalogue {rnd.catalogue.id} has no CIM-computed indicators")
    model = model_city or city
    names = tuple(dict.fromkeys(name for _, name in wanted))
    by_name = {c.name: c for c in cim_indicators.compute(engine, model, params, names)}
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
                source=f"CIM model of city {model}: {c.name}",
                note=", ".join(f"{k} {v}" for k, v in c.inputs.items()),
                computed=c.evidence,
            )
            for ind_id, c in done
        ],
    )
    return done
