"""Reads from hot standbys (`CIM_DATABASE_READ_URLS`), writes to the primary, and no stale read.

PostgreSQL's streaming replication replays the primary's WAL on each standby a little later, so
a standby may not show an ingest that has already committed. The rule here: a read that starts
after a commit sees it. Each read asks the primary where its WAL ends now
(`pg_current_wal_insert_lsn()`, a function call, no table touched: the primary is spared the
read itself) and uses a standby only once that standby has replayed up to there
(`pg_last_wal_replay_lsn()`); a standby still behind after `wait_s` is passed over for the
primary. Concurrent reads of a process share one question to the primary (a read waits for an
answer asked after it arrived, so the rule holds), so the primary sees at most one such query
in flight per process however many reads there are.

A standby that cannot be reached, or whose connection breaks, is left out for `retry_s` and
then tried again; the read goes to another standby or to the primary. A read whose connection
breaks half-way raises `StandbyLost` (not a `CimError`: the HTTP layer reruns the request,
see `StandbyRetry`). When the primary cannot be reached, standbys serve what they have.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError

from cim.db.engine import make_engine

T = TypeVar("T")
_POSITION = text("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
# NULL: the server is not (or no longer) in recovery, so it has everything it will ever have
_REPLAYED = text(
    "SELECT CASE WHEN pg_is_in_recovery()"
    " THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint END"
)
# set while a request is served for the last time: every read goes to the primary
primary_only: contextvars.ContextVar[bool] = contextvars.ContextVar("primary_only", default=False)


class StandbyLost(Exception):  # noqa: N818 - it names what happened, as the others do
    """A standby's connection broke (or it cancelled the query) while a read ran: the read may
    be run again, and will go elsewhere."""


@dataclass
class Standby:
    """One standby: its engine, when it may be tried again, and the WAL position it was last
    seen to have replayed (replay only moves forward, so a read needing less asks nothing)."""

    engine: Engine
    down_until: float = 0.0
    replayed: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def mark_down(self, retry_s: float) -> None:
        self.down_until = time.monotonic() + retry_s
        self.replayed = -1  # it may come back as another server (re-created, promoted)


class PrimaryPosition:
    """The primary's WAL position now, as one shared query: a caller gets the answer of a query
    that started after it asked (so no commit it could know of is missed), and only one such
    query runs at a time."""

    def __init__(self, engine: Engine, retry_s: float) -> None:
        self.engine = engine
        self.retry_s = retry_s
        self._cond = threading.Condition()
        self._started = 0
        self._finished = 0
        self._running = False
        self._value: int | None = None
        self._down_until = 0.0

    def now(self) -> int | None:
        """The position, or None when the primary cannot be reached (left out for `retry_s`)."""
        with self._cond:
            wanted = self._started + 1  # the next query to start starts after this call
            while self._finished < wanted:
                if self._running:
                    self._cond.wait()
                    continue
                if time.monotonic() < self._down_until:
                    return None
                self._started += 1
                self._running = True
                value: int | None = None
                self._cond.release()
                try:
                    value = self._ask()
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._finished = self._started
                    self._value = value
                    self._cond.notify_all()
            return self._value

    def _ask(self) -> int | None:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(_POSITION).scalar_one())
        except DBAPIError:
            self._down_until = time.monotonic() + self.retry_s
            return None


class ReadEngine(Engine):
    """An Engine for reads: `connect()` (and so `begin()`) gives a connection to a standby that
    has replayed every commit made before the call, else to the primary. Everything else (its
    URL, dialect, raw connections) is the primary's. Writing through it fails on a standby
    ("read-only transaction"): writers use the primary's engine."""

    def __init__(
        self,
        primary: Engine,
        standbys: Sequence[Engine],
        wait_s: float = 0.5,
        retry_s: float = 5.0,
    ) -> None:
        super().__init__(primary.pool, primary.dialect, primary.url, hide_parameters=True)
        self.primary = primary
        self.wait_s = wait_s
        self.retry_s = retry_s
        self.standbys = [Standby(e) for e in standbys]
        self.position = PrimaryPosition(primary, retry_s)
        self._turn = itertools.count()
        # reads served by a standby or the primary; reads lost with their standby (run again)
        self.served: dict[str, int] = {"standby": 0, "primary": 0, "lost": 0}
        for standby in self.standbys:
            event.listen(standby.engine, "handle_error", self._lost(standby))

    def _lost(self, standby: Standby) -> Callable[[ExceptionContext], BaseException | None]:
        def handle(ctx: ExceptionContext) -> BaseException | None:
            if ctx.is_pre_ping or ctx.connection is None:
                return None  # a pool's check, or a connection not made: `connect` copes
            if ctx.is_disconnect:
                standby.mark_down(self.retry_s)
            if ctx.is_disconnect or _retryable(ctx.original_exception):
                self.served["lost"] += 1
                return StandbyLost(f"standby {_where(standby.engine)}: {ctx.original_exception}")
            return None

        return handle

    def _candidates(self) -> list[Standby]:
        up = [s for s in self.standbys if s.up]
        if not up:
            return []
        start = next(self._turn) % len(up)
        return up[start:] + up[:start]

    def connect(self) -> Connection:
        """A connection to a fresh standby (see the module), else to the primary."""
        if self.standbys and not primary_only.get():
            target = self.position.now()
            deadline = time.monotonic() + self.wait_s
            for standby in self._candidates():
                conn = self._fresh(standby, target, deadline)
                if conn is not None:
                    self.served["standby"] += 1
                    return conn
        self.served["primary"] += 1
        return self.primary.connect()

    def _fresh(self, standby: Standby, target: int | None, deadline: float) -> Connection | None:
        """A connection to `standby` once it has replayed `target` (None: the primary is out of
        reach, any position will do), or None: unreachable, or still behind at `deadline`."""
        if target is not None and standby.replayed >= target:
            try:
                return standby.engine.connect()
            except (DBAPIError, StandbyLost):
                standby.mark_down(self.retry_s)
                return None
        try:
            conn = standby.engine.connect()
        except (DBAPIError, StandbyLost):
            standby.mark_down(self.retry_s)
            return None
        try:
            while True:
                replayed = conn.execute(_REPLAYED).scalar()
                conn.rollback()  # no snapshot held while waiting
                if replayed is None or target is None or replayed >= target:
                    if replayed is not None:
                        with standby.lock:
                            standby.replayed = max(standby.replayed, replayed)
                    return conn
                if time.monotonic() >= deadline:
                    conn.close()
                    return None
                time.sleep(0.002)
        except (DBAPIError, StandbyLost):
            conn.invalidate()
            conn.close()
            standby.mark_down(self.retry_s)
            return None

    def run(self, work: Callable[[Connection], T]) -> T:
        """`work` on a read connection, run again elsewhere when a standby is lost under it."""
        for _ in range(len(self.standbys)):
            try:
                with self.connect() as conn:
                    return work(conn)
            except StandbyLost:
                continue
        with self.primary.connect() as conn:
            return work(conn)

    def dispose(self, close: bool = True) -> None:
        """Close the standbys' connections (the primary's engine belongs to its maker)."""
        for standby in self.standbys:
            standby.engine.dispose(close)


def _retryable(exc: BaseException) -> bool:
    """Errors a standby gives that the same read elsewhere would not get: a query cancelled by
    a conflict with recovery (SQLSTATE 40001), an administrator's shutdown (57P01-57P03)."""
    state = getattr(exc, "sqlstate", None) or ""
    return state == "40001" or state.startswith("57P")


def _where(engine: Engine) -> str:
    return f"{engine.url.host}:{engine.url.port}"


def read_engine(
    primary: Engine, urls: Sequence[str], wait_s: float = 0.5, retry_s: float = 5.0
) -> Engine:
    """The engine reads use: the primary's own when no standby is named (nothing changes),
    else a `ReadEngine` over them."""
    if not urls:
        return primary
    standbys = [make_engine(u, connect_timeout=3) for u in urls]
    return ReadEngine(primary, standbys, wait_s, retry_s)


def replay_status(engine: Engine) -> dict[str, Any]:
    """What a server says of its replication: in recovery or not, and the WAL positions it
    received and replayed (for `cim db replica status`)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_is_in_recovery() AS standby,"
                " pg_last_wal_receive_lsn()::text AS received,"
                " pg_last_wal_replay_lsn()::text AS replayed,"
                " (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed_bytes,"
                " extract(epoch FROM now() - pg_last_xact_replay_timestamp()) AS replay_age_s"
            )
        ).one()
    return dict(row._mapping)
