"""Indicator values of a round: what a value may be for its indicator, entering values (all or
none, each change audited, their evidence stored in the same transaction), reading them back,
the committee's choice between a reported and a computed value, and each value's history."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from enum import Enum
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from cim.errors import InvalidInput, InvalidRows
from grading.access import Actor, audit, refuse_reviewer, require, require_round
from grading.catalogue import (
    STORED,
    Catalogue,
    Indicator,
    Linear,
    Qualitative,
    Thresholds,
    YesNo,
)
from grading.evidence import EvidenceFile, store_evidence
from grading.store import require_draft, round_row, stored_values

MAX_ABS_VALUE = 1e15  # no indicator needs more; JSON and spreadsheets keep it exact
_YES = {"yes", "y", "true", "1", "是", "有"}
_NO = {"no", "n", "false", "0", "否", "无"}


class Keep(Enum):
    """What an entry says of a field it does not give: keep what is stored."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class ValueEntry:
    """One value to enter: where it comes from travels with it. A correction keeps the stored
    source, link, note and evidence of the value unless it gives them (KEEP: not given)."""

    city: str
    indicator: str
    value: Any
    unit: str = ""
    source: str | Keep = KEEP
    link: str | None | Keep = KEEP
    note: str | None | Keep = KEEP
    evidence_sha256: str | None | Keep = KEEP
    computed: dict[str, Any] | None = None
    where: str = ""  # e.g. "values.csv row 7", for error messages
    reason: str | None = None  # why the value changes (kept in its history)
    default_source: str = ""  # the source of a new value that gives none


def _given(field: Any, stored: dict[str, Any] | None, name: str, default: Any) -> Any:
    """A field of an entry, or what is stored when the entry does not give it."""
    if field is not KEEP:
        return field
    return stored[name] if stored else default


def coerce_value(ind: Indicator, raw: Any, where: str, typed: bool = True) -> Any:
    """A raw value (text from a template, or JSON) as the indicator's scoring method needs it.

    A number must lie in the indicator's range. For a percentage indicator, a bare number from
    0 to 1 (`typed`: entered by a person, not computed) is refused as ambiguous: 0.975 may be
    97.5 % written as a fraction, or 0.975 %; "0.975%" or 97.5 says which. A value written with
    a percent sign is refused for an indicator measured in something else.

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
    text = str(raw).strip() if isinstance(raw, str) else None
    percent = text is not None and text.endswith("%")
    try:
        number = float(text.rstrip("%").strip()) if text is not None else float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{where}: indicator {ind.id} takes a number ({ind.unit or 'no unit'}), not {raw!r}"
        ) from None
    if not math.isfinite(number) or abs(number) > MAX_ABS_VALUE:
        raise InvalidInput(
            f"{where}: indicator {ind.id}: {raw!r} is not a finite number within ±{MAX_ABS_VALUE:g}"
        )
    if percent and ind.unit != "%":
        raise InvalidInput(
            f"{where}: indicator {ind.id} is measured in {ind.unit or 'no unit'!r}, not in %: "
            f"{raw!r} (a percent-formatted cell shows its value times 100)"
        )
    if typed and not percent and ind.unit == "%" and 0 < number <= 1:
        raise InvalidInput(
            f"{where}: indicator {ind.id}: {raw!r} is ambiguous for a percentage: write "
            f"{number * 100:g} for {number * 100:g} %, or {number:g}% if you mean {number:g} %"
        )
    valid = ind.valid_range()
    if valid is not None and not valid.holds(number):
        shown = repr(raw) if isinstance(raw, str) else f"{number:g}"
        raise InvalidInput(
            f"{where}: indicator {ind.id}: {shown} is impossible; it takes "
            f"{valid.describe(ind.unit)}"
        )
    return number


def _checked(
    conn: Connection,
    round_id: str,
    codes: set[str],
    indicators: dict[str, Indicator],
    catalogue_id: str,
    e: ValueEntry,
) -> tuple[ValueEntry, Indicator, Any]:
    """An entry with its indicator and its value as stored.

    Raises:
        InvalidInput: an unknown city or indicator, a value the indicator cannot take, another
        unit, a link that is not http(s), evidence the round does not hold.
    """
    where = e.where or f"city {e.city}, indicator {e.indicator}"
    if e.city not in codes:
        raise InvalidInput(f"{where}: city {e.city!r} is not in round {round_id}")
    ind = indicators.get(e.indicator)
    if ind is None:
        raise InvalidInput(f"{where}: catalogue {catalogue_id} has no indicator {e.indicator!r}")
    value = coerce_value(ind, e.value, where, typed=e.computed is None)
    if e.unit and ind.unit and e.unit != ind.unit:
        raise InvalidInput(
            f"{where}: indicator {ind.id} is measured in {ind.unit!r}, not {e.unit!r}"
        )
    if isinstance(e.link, str) and e.link and not re.match(r"https?://", e.link, re.IGNORECASE):
        raise InvalidInput(f"{where}: link {e.link!r} is not an http(s) address")
    if (
        isinstance(e.evidence_sha256, str)
        and not conn.execute(
            text("SELECT 1 FROM grading_evidence WHERE round_id = :r AND sha256 = :s"),
            {"r": round_id, "s": e.evidence_sha256},
        ).first()
    ):
        raise InvalidInput(f"{where}: no evidence {e.evidence_sha256} in round {round_id}")
    return e, ind, value


def set_values(
    engine: Engine,
    actor: Actor,
    round_id: str,
    entries: list[ValueEntry],
    evidence: Sequence[EvidenceFile] = (),
) -> int:
    """Enter values (all or none), storing their evidence files first in the same transaction;
    returns how many values changed. Each change is audited.

    Raises:
        Forbidden: role too weak or a city not assigned. Conflict: the round is not a draft.
        InvalidInput: unknown city or indicator, a value of the wrong kind, unknown evidence.
    """
    require(actor, "assessor")
    require_round(actor, round_id)
    refuse_reviewer(actor)
    changed = 0
    with engine.begin() as conn:
        row = round_row(conn, round_id, lock=True)
        require_draft(row, "its values")
        for file in evidence:
            store_evidence(conn, actor, round_id, file)
        catalogue = Catalogue.model_validate(row.catalogue, context=STORED)
        indicators = {i.id: i for i in catalogue.indicators}
        codes = set(
            conn.execute(
                text("SELECT code FROM grading_city WHERE round_id = :r"), {"r": round_id}
            ).scalars()
        )
        checked: list[tuple[ValueEntry, Indicator, Any]] = []
        problems: list[str] = []
        for e in entries:
            require(actor, "assessor", e.city)  # a city outside the key's scope: 403, first
            try:
                checked.append(_checked(conn, round_id, codes, indicators, catalogue.id, e))
            except InvalidInput as exc:
                problems.append(str(exc))
        if problems:
            raise InvalidRows(f"round {round_id}", problems)
        for e, ind, value in checked:
            kind = "reported" if e.computed is None else "computed"  # never one over the other
            old_row = (
                conn.execute(
                    text(
                        "SELECT kind, value, unit, source, link, note, evidence_sha256, computed "
                        "FROM grading_value WHERE round_id = :r AND city_code = :c "
                        "AND indicator_id = :i AND kind = :k"
                    ),
                    {"r": round_id, "c": e.city, "i": ind.id, "k": kind},
                )
                .mappings()
                .first()
            )
            old = dict(old_row) if old_row else None
            new = {
                "kind": kind,
                "value": value,
                "unit": ind.unit,
                "source": _given(e.source, old, "source", e.default_source),
                "link": _given(e.link, old, "link", None),
                "note": _given(e.note, old, "note", None),
                "evidence_sha256": _given(e.evidence_sha256, old, "evidence_sha256", None),
                "computed": e.computed,
            }
            if old == new:
                continue
            conn.execute(
                text(
                    "INSERT INTO grading_value (round_id, city_code, indicator_id, kind, value, "
                    "unit, source, link, note, evidence_sha256, computed, entered_by) VALUES "
                    "(:r, :c, :i, :k, CAST(:v AS jsonb), :unit, :source, :link, :note, :ev, "
                    "CAST(:computed AS jsonb), :by) ON CONFLICT (round_id, city_code, "
                    "indicator_id, kind) DO UPDATE SET value = EXCLUDED.value, "
                    "unit = EXCLUDED.unit, source = EXCLUDED.source, link = EXCLUDED.link, "
                    "note = EXCLUDED.note, "
                    "evidence_sha256 = EXCLUDED.evidence_sha256, computed = EXCLUDED.computed, "
                    "entered_by = EXCLUDED.entered_by, entered_at = now()"
                ),
                {
                    "r": round_id,
                    "c": e.city,
                    "i": ind.id,
                    "k": kind,
                    "v": orjson.dumps(value).decode(),
                    "unit": ind.unit,
                    "source": new["source"],
                    "link": new["link"],
                    "note": new["note"],
                    "ev": new["evidence_sha256"],
                    "computed": None if e.computed is None else orjson.dumps(e.computed).decode(),
                    "by": actor.name,
                },
            )
            told = {**new, "reason": e.reason} if e.reason else new
            audit(conn, actor, "value.set", round_id, f"{e.city}/{ind.id}", old, told)
            changed += 1
    return changed


def entered(engine: Engine, round_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """city -> indicator -> the value entered, with its unit, source and evidence.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        round_row(conn, round_id)
        return stored_values(conn, round_id)


def choose(
    engine: Engine,
    actor: Actor,
    round_id: str,
    city: str,
    indicator: str,
    counts: str,
    reason: str,
) -> bool:
    """Record which of a city's two values of an indicator counts: the one it reported or the
    one computed from the city model, with the committee's reason (audited). Returns whether
    the choice changed.

    Raises:
        Forbidden: below reviewer. Conflict: the round is not a draft.
        InvalidInput: no reason, another kind, or no value of that kind to choose.
    """
    require(actor, "reviewer")
    require_round(actor, round_id)
    if counts not in ("reported", "computed"):
        raise InvalidInput(f"choose 'reported' or 'computed', not {counts!r}")
    if not reason.strip():
        raise InvalidInput("a choice needs its reason (it goes into the audit log and the report)")
    with engine.begin() as conn:
        require_draft(round_row(conn, round_id, lock=True), "the choice of values")
        have = set(
            conn.execute(
                text(
                    "SELECT kind FROM grading_value WHERE round_id = :r AND city_code = :c "
                    "AND indicator_id = :i"
                ),
                {"r": round_id, "c": city, "i": indicator},
            ).scalars()
        )
        if counts not in have:
            raise InvalidInput(
                f"city {city}, indicator {indicator}: there is no {counts} value to choose "
                f"(there is: {', '.join(sorted(have)) or 'none'})"
            )
        old_row = (
            conn.execute(
                text(
                    "SELECT counts, reason FROM grading_choice WHERE round_id = :r "
                    "AND city_code = :c AND indicator_id = :i"
                ),
                {"r": round_id, "c": city, "i": indicator},
            )
            .mappings()
            .first()
        )
        old = dict(old_row) if old_row else None
        new = {"counts": counts, "reason": reason.strip()}
        if old == new:
            return False
        conn.execute(
            text(
                "INSERT INTO grading_choice (round_id, city_code, indicator_id, counts, reason, "
                "chosen_by) VALUES (:r, :c, :i, :counts, :reason, :by) ON CONFLICT (round_id, "
                "city_code, indicator_id) DO UPDATE SET counts = EXCLUDED.counts, "
                "reason = EXCLUDED.reason, chosen_by = EXCLUDED.chosen_by, chosen_at = now()"
            ),
            {"r": round_id, "c": city, "i": indicator, **new, "by": actor.name},
        )
        audit(conn, actor, "value.choose", round_id, f"{city}/{indicator}", old, new)
    return True


def history(engine: Engine, round_id: str, city: str, indicator: str) -> list[dict[str, Any]]:
    """Every change of a city's value of an indicator, oldest first: when, who, old -> new (with
    the reason given), and the committee's choices between reported and computed values.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as conn:
        round_row(conn, round_id)
        rows = conn.execute(
            text(
                "SELECT at, actor, action, old, new FROM audit_log WHERE round_id = :r "
                "AND target = :t AND action IN ('value.set', 'value.choose') ORDER BY id"
            ),
            {"r": round_id, "t": f"{city}/{indicator}"},
        ).mappings()
        return [{**r, "at": r["at"].astimezone(UTC).isoformat()} for r in rows]
