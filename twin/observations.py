"""Observations as PostgreSQL keeps them: monthly partitions of their phenomenon time (created
ahead, and on demand for a month that has none), batches written with COPY in one transaction,
the latest Observation of each Datastream kept as batches arrive, and retention by whole
partitions.

The callers (twin.store, for HTTP and MQTT alike) check the Datastreams and find each
Observation's FeatureOfInterest; this module checks each result against its Datastream's
observation type and each time, and writes.
"""

# ruff: noqa: S608  (table and column names come from twin.entities, never from a request;
# every value is a bind parameter)
from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from cim import jsonvalues

SCHEMA = "twin_parts"
MONTHS_AHEAD = 2  # partitions made ahead of the current month
COLUMNS = (
    "datastream_id",
    "phenomenon_start",
    "id",
    "phenomenon_end",
    "result_time",
    "result_number",
    "result",
    "feature_id",
    "result_quality",
    "valid_start",
    "valid_end",
    "parameters",
)


@dataclass(slots=True)
class NewObservation:
    """One Observation to store, checked: its result split into number or JSON."""

    datastream_id: int
    phenomenon_start: datetime
    phenomenon_end: datetime | None
    result_time: datetime | None
    result_number: float | None
    result: Any
    feature_id: int | None
    result_quality: Any = None
    valid_start: datetime | None = None
    valid_end: datetime | None = None
    parameters: dict[str, Any] | None = None
    id: int | None = None
    # written once when it is stored, for COPY and for what is published: the phenomenon time
    # as UTC to the millisecond with Z (when it has no finer part), a number's shortest text
    time_text: str | None = None
    number_text: str | None = None


# --- partitions


def month_start(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, 1, tzinfo=UTC)


def next_month(t: datetime) -> datetime:
    return datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"observation_{month.year:04d}_{month.month:02d}"


class Partitions:
    """The months that have a partition, as this process knows them: made in their own short
    transaction before a batch that needs them, so that a batch never holds the lock that
    creating a partition takes on the whole table."""

    def __init__(self) -> None:
        self._known: dict[str, set[datetime]] = {}  # by database
        self._lock = threading.Lock()

    def ensure(self, engine: Engine, times: Iterable[datetime]) -> None:
        database = engine.url.render_as_string(hide_password=True)
        known = self._known.setdefault(database, set())
        utc = {
            (t.year, t.month) for t in (t.astimezone(UTC) if t.utcoffset() else t for t in times)
        }
        months = {datetime(y, m, 1, tzinfo=UTC) for y, m in utc} - known
        if not months:
            return
        with self._lock:
            with engine.begin() as conn:
                known |= existing_months(conn)
                missing = months - known
                if missing:
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('twin_parts'))"))
                    known |= existing_months(conn)
                    for month in sorted(missing - known):
                        create_partition(conn, month)
                        known.add(month)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


PARTITIONS = Partitions()


def existing_months(conn: Connection) -> set[datetime]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'twin_observation'::regclass"
        )
    ).scalars()
    months = set()
    for name in rows:
        try:
            _, year, month = name.rsplit("_", 2)
            months.add(datetime(int(year), int(month), 1, tzinfo=UTC))
        except ValueError:
            continue
    return months


def create_partition(conn: Connection, month: datetime) -> None:
    conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{partition_name(month)} PARTITION OF "
            f"twin_observation FOR VALUES FROM ('{month.isoformat()}') "
            f"TO ('{next_month(month).isoformat()}')"
        )
    )


def make_ahead(engine: Engine, now: datetime | None = None) -> list[str]:
    """Partitions for this month and the next ones, before anything needs them."""
    now = now or datetime.now(UTC)
    month = month_start(now)
    months = [month]
    for _ in range(MONTHS_AHEAD):
        months.append(next_month(months[-1]))
    PARTITIONS.ensure(engine, months)
    return [partition_name(m) for m in months]


def retain(engine: Engine, older_than: timedelta, now: datetime | None = None) -> list[str]:
    """Drop the partitions whose whole month is older than `older_than`, and bring the latest
    values of the Datastreams that lost Observations up to date. Returns the partitions
    dropped."""
    cutoff = (now or datetime.now(UTC)) - older_than
    dropped = []
    with engine.begin() as conn:
        for month in sorted(existing_months(conn)):
            if next_month(month) <= cutoff:
                name = partition_name(month)
                conn.execute(text(f"DROP TABLE {SCHEMA}.{name}"))
                dropped.append(name)
        if dropped:
            stale = (
                conn.execute(
                    text("SELECT datastream_id FROM twin_latest WHERE first_time < :cut"),
                    {"cut": cutoff},
                )
                .scalars()
                .all()
            )
            refresh_latest(conn, stale)
    PARTITIONS.forget()
    return dropped


# --- writing


def reserve_ids(conn: Connection, n: int) -> list[int]:
    """n new Observation ids, as one array (a row each took a tenth of a batch's time)."""
    return list(
        conn.execute(
            text(
                "SELECT array_agg(nextval('twin_observation_id_seq')) FROM generate_series(1, :n)"
            ),
            {"n": n},
        ).scalar_one()
    )


def _json(value: Any) -> str | None:
    return None if value is None else jsonvalues.dumps(value).decode()


def insert(conn: Connection, rows: Sequence[NewObservation]) -> list[int]:
    """Write checked Observations (their partitions must exist: `PARTITIONS.ensure`) and keep
    the latest of each Datastream, in the caller's transaction. Returns their ids."""
    if not rows:
        return []
    ids = reserve_ids(conn, len(rows))
    for row, ident in zip(rows, ids, strict=True):
        row.id = ident
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        with cur.copy(f"COPY twin_observation ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for start in range(0, len(rows), COPY_CHUNK):
                copy.write("".join(map(_copy_line, rows[start : start + COPY_CHUNK])))
    keep_latest(conn, rows)
    return ids


COPY_CHUNK = 2000  # rows per write to the COPY stream


NULL = "\\N"  # COPY's text format for NULL


def _copy_text(value: Any) -> str:
    """A JSON value as a COPY text field (JSON escapes control characters; the backslashes it
    writes are doubled, as COPY's text format reads backslash sequences)."""
    if value is None:
        return NULL
    return jsonvalues.dumps(value).decode().replace("\\", "\\\\")


def _copy_time(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


def number_text(x: float) -> str:
    """A number as JSON and COPY write it: a whole one as an integer (as it was most likely
    sent), else Python's repr, which PostgreSQL reads back to the same double."""
    return repr(int(x)) if x.is_integer() and x and abs(x) < 2**53 else repr(x)


def _copy_line(r: NewObservation) -> str:
    """One row of COPY's text format (built here: psycopg's write_row took half the time of a
    batch). The time and number texts are kept on the row for what publishes it."""
    start = r.phenomenon_start
    if start.tzinfo is UTC and not start.microsecond % 1000:
        when = r.time_text = start.isoformat(timespec="milliseconds")[:23] + "Z"
    else:  # finer than a millisecond: COPY keeps every digit
        when = start.isoformat()
    number = NULL
    if r.result_number is not None:
        number = r.number_text = number_text(r.result_number)
    plain = r.result_quality is None and r.valid_start is None and r.parameters is None
    if plain and r.result is None and r.phenomenon_end is None and r.result_time is None:
        return (  # the common case: a number at an instant
            f"{r.datastream_id}\t{when}\t{r.id}\t{NULL}\t{NULL}\t{number}\t{NULL}\t"
            f"{NULL if r.feature_id is None else r.feature_id}\t{NULL}\t{NULL}\t{NULL}\t{NULL}\n"
        )
    tail = (
        f"{NULL}\t{NULL}\t{NULL}\t{NULL}"
        if plain
        else f"{_copy_text(r.result_quality)}\t{_copy_time(r.valid_start)}\t"
        f"{_copy_time(r.valid_end)}\t{_copy_text(r.parameters)}"
    )
    return (
        f"{r.datastream_id}\t{when}\t{r.id}\t"
        f"{_copy_time(r.phenomenon_end)}\t{_copy_time(r.result_time)}\t"
        f"{number}\t{_copy_text(r.result)}\t"
        f"{NULL if r.feature_id is None else r.feature_id}\t{tail}\n"
    )


def keep_latest(conn: Connection, rows: Sequence[NewObservation]) -> None:
    """Fold a batch into `twin_latest`: per Datastream the newest Observation (by phenomenon
    time, then id) and the span of phenomenon and result times. Datastreams in id order, so
    that two batches never wait on each other's rows in a circle."""
    best: dict[int, NewObservation] = {}
    spans: dict[int, list[Any]] = {}
    for r in rows:
        current = best.get(r.datastream_id)
        if current is None or (r.phenomenon_start, r.id or 0) > (
            current.phenomenon_start,
            current.id or 0,
        ):
            best[r.datastream_id] = r
        end = r.phenomenon_end or r.phenomenon_start
        span = spans.get(r.datastream_id)
        if span is None:
            spans[r.datastream_id] = [r.phenomenon_start, end, r.result_time, r.result_time]
        else:
            span[0] = min(span[0], r.phenomenon_start)
            span[1] = max(span[1], end)
            if r.result_time is not None:
                span[2] = r.result_time if span[2] is None else min(span[2], r.result_time)
                span[3] = r.result_time if span[3] is None else max(span[3], r.result_time)
    latest = []
    for ds in sorted(best):
        r = best[ds]
        first, last, first_result, last_result = spans[ds]
        latest.append(
            {
                "ds": ds,
                "oid": r.id,
                "ps": r.phenomenon_start,
                "pe": r.phenomenon_end,
                "rt": r.result_time,
                "rn": r.result_number,
                "r": r.result,
                "ft": first,
                "lt": last,
                "frt": first_result,
                "lrt": last_result,
            }
        )
    # one statement over the batch as JSON (orjson writes it in C), not a statement a
    # Datastream: 5,000 Datastreams in a batch took 0.2 s as an executemany, 0.1 s as arrays
    conn.exec_driver_sql(_KEEP_LATEST, {"rows": jsonvalues.dumps(latest).decode()})


_KEEP_LATEST = """
    INSERT INTO twin_latest AS l (datastream_id, observation_id, phenomenon_start,
        phenomenon_end, result_time, result_number, result, first_time, last_time,
        first_result_time, last_result_time)
    SELECT ds, oid, ps, pe, rt, rn, nullif(r, 'null'), ft, lt, frt, lrt
    FROM json_to_recordset(CAST(%(rows)s AS json)) AS n (ds bigint, oid bigint,
        ps timestamptz, pe timestamptz, rt timestamptz, rn float8, r jsonb,
        ft timestamptz, lt timestamptz, frt timestamptz, lrt timestamptz)
    ON CONFLICT (datastream_id) DO UPDATE SET
        observation_id = CASE WHEN newer THEN excluded.observation_id ELSE l.observation_id END,
        phenomenon_start = CASE WHEN newer THEN excluded.phenomenon_start
            ELSE l.phenomenon_start END,
        phenomenon_end = CASE WHEN newer THEN excluded.phenomenon_end ELSE l.phenomenon_end END,
        result_time = CASE WHEN newer THEN excluded.result_time ELSE l.result_time END,
        result_number = CASE WHEN newer THEN excluded.result_number ELSE l.result_number END,
        result = CASE WHEN newer THEN excluded.result ELSE l.result END,
        first_time = LEAST(l.first_time, excluded.first_time),
        last_time = GREATEST(l.last_time, excluded.last_time),
        first_result_time = LEAST(l.first_result_time, excluded.first_result_time),
        last_result_time = GREATEST(l.last_result_time, excluded.last_result_time)
    """.replace(
    "newer",
    "(excluded.phenomenon_start, excluded.observation_id) >= "
    "(l.phenomenon_start, l.observation_id)",
)


def refresh_latest(conn: Connection, datastreams: Iterable[int]) -> None:
    """Recompute the latest values of Datastreams from their stored Observations (after a
    deletion, an update or a retention), each from its own index range."""
    ids = sorted(set(datastreams))
    if not ids:
        return
    conn.execute(text("DELETE FROM twin_latest WHERE datastream_id = ANY(:ids)"), {"ids": ids})
    conn.execute(
        text("""
        WITH span AS (
            SELECT d.id AS ds,
                (SELECT min(o.phenomenon_start) FROM twin_observation o
                 WHERE o.datastream_id = d.id) AS first_time,
                (SELECT max(coalesce(o.phenomenon_end, o.phenomenon_start))
                 FROM twin_observation o WHERE o.datastream_id = d.id) AS last_time,
                (SELECT min(o.result_time) FROM twin_observation o
                 WHERE o.datastream_id = d.id) AS first_result_time,
                (SELECT max(o.result_time) FROM twin_observation o
                 WHERE o.datastream_id = d.id) AS last_result_time
            FROM twin_datastream d WHERE d.id = ANY(:ids)
        ), newest AS (
            SELECT DISTINCT ON (o.datastream_id) o.* FROM twin_observation o
            WHERE o.datastream_id = ANY(:ids)
            ORDER BY o.datastream_id, o.phenomenon_start DESC, o.id DESC
        )
        INSERT INTO twin_latest (datastream_id, observation_id, phenomenon_start,
            phenomenon_end, result_time, result_number, result, first_time, last_time,
            first_result_time, last_result_time)
        SELECT n.datastream_id, n.id, n.phenomenon_start, n.phenomenon_end, n.result_time,
            n.result_number, n.result, s.first_time, s.last_time, s.first_result_time,
            s.last_result_time
        FROM newest n JOIN span s ON s.ds = n.datastream_id
        """),
        {"ids": ids},
    )


def delete(conn: Connection, where: str, params: dict[str, Any]) -> int:
    """Delete the Observations a condition (over alias o) selects; returns how many."""
    touched = (
        conn.execute(
            text(f"DELETE FROM twin_observation o WHERE {where} RETURNING o.datastream_id"), params
        )
        .scalars()
        .all()
    )
    refresh_latest(conn, touched)
    return len(touched)


def update_one(conn: Connection, ident: int, changes: dict[str, Any]) -> None:
    """Change stored columns of one Observation (checked by the caller), keeping latest."""
    params = {
        c: (_json(v) if c in ("result", "result_quality", "parameters") else v)
        for c, v in changes.items()
    }
    sets = ", ".join(
        f"{c} = CAST(:{c} AS jsonb)"
        if c in ("result", "result_quality", "parameters")
        else f"{c} = :{c}"
        for c in changes
    )
    ds = (
        conn.execute(
            text(f"UPDATE twin_observation SET {sets} WHERE id = :ident RETURNING datastream_id"),
            {**params, "ident": ident},
        )
        .scalars()
        .all()
    )
    refresh_latest(conn, ds)
