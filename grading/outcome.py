"""The results of rounds in the database: computed from the stored values (and kept in a
`ResultsCache` while nothing in the round changes), or, for a final round, the frozen document
checked against its SHA-256; what-ifs with another policy or catalogue; and the recomputation
that verifies a final round."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, text

from cim.errors import Conflict
from grading.assessment import round_results
from grading.awards import AwardPolicy
from grading.catalogue import Catalogue
from grading.results import RoundResults, canonical_json
from grading.store import Round, as_round, city_rows, round_row, stored_values


class ResultsCache:
    """Results computed before, for as long as their round is unchanged (dashboards read them
    many times a second), at most `size` rounds. The API's app keeps one (`app.state`); a
    command, which computes a round's results once, needs none."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._kept: dict[tuple[Any, ...], RoundResults] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> RoundResults | None:
        """The results kept under `key`, if any (they are immutable: callers share them)."""
        with self._lock:
            return self._kept.get(key)

    def put(self, key: tuple[Any, ...], results: RoundResults) -> None:
        """Keep results, forgetting the oldest beyond `size`."""
        with self._lock:
            self._kept[key] = results
            while len(self._kept) > self.size:
                self._kept.pop(next(iter(self._kept)))


def results(engine: Engine, round_id: str, cache: ResultsCache | None = None) -> RoundResults:
    """Scores, ranking and allocation of a round, computed afresh or taken from `cache`.

    A final round's results are the frozen document, checked against its SHA-256.

    Raises:
        NotFound: no such round. Conflict: a final round whose stored results do not match
        their hash.
    """
    with engine.connect() as connection:
        # one snapshot: the round, its values and its newest audit entry agree
        conn = connection.execution_options(isolation_level="REPEATABLE READ")
        newest = conn.execute(
            text("SELECT id, at FROM audit_log WHERE round_id = :r ORDER BY id DESC LIMIT 1"),
            {"r": round_id},
        ).first()
        rnd = as_round(round_row(conn, round_id))
        if rnd.status == "final":
            return _frozen(rnd)
        # every change to a round is in its audit log: the newest entry (its id, and its time,
        # which a restored older database cannot repeat) says whether results computed before
        # are still the round's
        stamp = (newest.id, newest.at.isoformat()) if newest is not None else None
        key = (engine.url.render_as_string(hide_password=True), round_id, stamp, rnd.status)
        kept = cache.get(key) if cache is not None else None
        if kept is not None:
            return kept
        computed = compute(conn, rnd)
    if cache is not None:
        cache.put(key, computed)
    return computed


def recompute(
    engine: Engine, round_id: str, policy: AwardPolicy | None, catalogue: Catalogue | None
) -> RoundResults:
    """A round's results with another policy and/or catalogue (e.g. a changed weight): a what-if
    that changes nothing stored.

    Raises:
        NotFound: no such round.
    """
    with engine.connect() as connection:
        conn = connection.execution_options(isolation_level="REPEATABLE READ")
        rnd = as_round(round_row(conn, round_id))
        changed = replace(rnd, policy=policy or rnd.policy, catalogue=catalogue or rnd.catalogue)
        return compute(conn, changed)


def verify(engine: Engine, round_id: str) -> tuple[bool, str, str]:
    """Recompute a final round from its stored values, catalogue and policy: (identical?, the
    frozen SHA-256, the recomputed one).

    Raises:
        Conflict: the round is not final.
    """
    with engine.connect() as conn:
        rnd = as_round(round_row(conn, round_id))
        if rnd.status != "final":
            raise Conflict(f"round {round_id} is {rnd.status}; only a final round has results")
        again = compute(conn, rnd).sha256()
    frozen = rnd.results_sha256 or ""
    return again == frozen, frozen, again


def compute(conn: Connection, rnd: Round) -> RoundResults:
    """A round's results from its catalogue, policy and stored cities and values (in the
    caller's transaction)."""
    meta = {"id": rnd.id, "title": rnd.title, "year": rnd.year}
    return round_results(
        meta, rnd.catalogue, rnd.policy, city_rows(conn, rnd.id), stored_values(conn, rnd.id)
    )


def _frozen(rnd: Round) -> RoundResults:
    """A final round's stored results, once their bytes match the SHA-256 frozen with them."""
    assert rnd.results is not None
    digest = hashlib.sha256(canonical_json(rnd.results)).hexdigest()
    if digest != rnd.results_sha256:
        raise Conflict(
            f"round {rnd.id}: the stored results ({digest[:12]}) do not match the "
            f"SHA-256 frozen with them ({(rnd.results_sha256 or '')[:12]})"
        )
    return RoundResults.from_dict(rnd.results)
