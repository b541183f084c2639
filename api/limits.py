"""Limits that keep one caller from stalling the service, each in this process's memory (every
server process keeps its own):

- failed authentications, counted per client address: after `limit` failures within `window`
  seconds a client is refused (429, with Retry-After) until its oldest failure has aged out, so
  keys cannot be guessed at speed;
- request bodies, by the kind of route (`body_limit`): kilobytes for JSON, 50 MB for uploads;
- heavy requests (large feature pages, report renders, what-ifs): a few at a time (`HeavyGate`).
"""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import multiprocessing
import os
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from math import ceil
from typing import Any, TypeVar

import anyio
from sqlalchemy import Engine
from starlette.exceptions import HTTPException

from api.edge import ip_of
from cim.db.engine import make_engine
from cim.errors import TooManyAttempts
from grading import evidence

T = TypeVar("T")
MAX_CLIENTS = 100_000  # addresses with recent failures kept at most


def client_key(host: str) -> str:
    """Whom a client address counts as: an IPv4 address itself; an IPv6 address its /64 (one
    subscriber's network, whose 2^64 addresses would otherwise each get their own count)."""
    ip = ip_of(host)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else host


class FailureLimiter:
    """Failures per client (its address, see `client_key`) within a sliding window."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def check(self, client: str) -> None:
        """Refuse a client that has failed too often lately.

        Raises:
            TooManyAttempts: `limit` failures within the window.
        """
        client = client_key(client)
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) >= self.limit:
                wait = max(1, ceil(self.window - (now - times[0])))
                raise TooManyAttempts(
                    f"too many failed authentications from this address; retry in {wait} s",
                    wait,
                )

    def failed(self, client: str) -> None:
        """Count a failure; only clients that failed are kept, the longest quiet ones dropped
        beyond MAX_CLIENTS (memory stays bounded whatever the addresses)."""
        client = client_key(client)
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times
            self._failures.move_to_end(client)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)


class RefusalSampler:
    """Which refusals of callers without a valid key are written to the audit log: the first
    `rows` of each client (its address, see `client_key`) within a window, the rest counted and
    the count written with that client's next row. Each such refusal was a database write: a
    flood of anonymous requests (5,000 in 20 s) made as many audit rows, filling the log and
    holding the connection pool. Every request still has its line in the request log."""

    def __init__(
        self, rows: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rows = rows
        self.window = window
        self.clock = clock
        self._clients: OrderedDict[str, tuple[float, int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, client: str) -> int | None:
        """None: count this refusal, write nothing. Else write it, with the number of this
        client's refusals counted and not written since its last row."""
        client = client_key(client)
        now = self.clock()
        with self._lock:
            since, written, unwritten = self._clients.get(client, (now, 0, 0))
            if now - since >= self.window:  # a new window: its first row carries the count
                since, written = now, 0
            if written >= self.rows:
                self._clients[client] = (since, written, unwritten + 1)
                return None
            self._clients[client] = (since, written + 1, 0)
            self._clients.move_to_end(client)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            return unwritten


# request bodies, by the kind of route: a JSON body is parsed whole before anything else runs, so
# it gets what its largest honest content needs; only file uploads get megabytes
JSON_BODY = 1_000_000  # a round with its catalogue, policy and cities; a policy
WHAT_IF_BODY = 256 * 1024  # another catalogue and/or policy (the built-in catalogue: 9 kB)
VALUE_BODY = 128 * 1024  # one value: its note, source, link and reason, even all \u-escaped
DATA_ARRAY_BODY = 32 * 1024 * 1024  # SensorThings CreateObservations: 100,000 rows
UPLOAD_HEADROOM = 1_000_000  # over the upload limit, which `upload()` checks to the byte
_UPLOAD = re.compile(r"^/grading/rounds/[^/]+/(evidence|imports|cities/[^/]+/area)$")
_WHAT_IF = re.compile(r"^/grading/rounds/[^/]+/what-if$")
_VALUE = re.compile(r"^/grading/rounds/[^/]+/cities/[^/]+/values/[^/]+$")


def body_limit(method: str, path: str) -> int:
    """The most bytes a request's body may have, by its route: uploads (evidence, templates,
    area files) up to the evidence limit, a what-if 256 KiB, a value 128 KiB, a SensorThings
    Data Array 32 MB (100,000 Observations), any other 1 MB."""
    if _UPLOAD.match(path):
        return evidence.MAX_EVIDENCE_BYTES + UPLOAD_HEADROOM  # looked up now, as upload() does
    if _WHAT_IF.match(path):
        return WHAT_IF_BODY
    if _VALUE.match(path):
        return VALUE_BODY
    if path == "/v1.1/CreateObservations":
        return DATA_ARRAY_BODY
    return JSON_BODY


class BodyLimit:
    """ASGI middleware: refuse request bodies over their limit (413, problem+json) before
    anything parses them — by Content-Length when given, else by counting as they arrive.
    `limit` is a number of bytes, or a function of the method and path that gives it."""

    def __init__(self, app: Any, limit: int | Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_of = limit if callable(limit) else (lambda method, path: limit)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0
        over = False

        async def counted() -> Any:
            nonlocal seen, over
            if over:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # the app gets no more; its answer is replaced below
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        refused = False

        async def answering(message: Any) -> None:
            nonlocal refused
            if not over:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(send, limit)

        await self.app(scope, counted, answering)

    async def _refuse(self, send: Any, limit: int) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"the request body is larger than the limit of {limit:,} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class HeavyGate:
    """Heavy requests (large feature pages, report renders, what-ifs) at most `slots` at a time,
    their work done in as many worker processes (`run`): each holds a CPU, memory and a database
    connection for a while, so beyond a few at once they would starve every other request (and
    `/health`) of them. A request that finds every slot taken waits up to `wait` seconds for
    one, with at most `16 * slots` waiting in line (waiting costs nothing: no thread, no
    memory); else it is refused with 503 and Retry-After."""

    POLL = 0.02  # seconds between looks for a free slot
    TASKS_PER_PROCESS = 100  # then a worker process is replaced (what it grew is given back)

    def __init__(self, slots: int, wait: float) -> None:
        self.slots = slots
        self.wait = wait
        self.max_waiting = 16 * slots
        self._busy = 0
        self._waiting = 0
        self._lock = threading.Lock()
        self._workers: ProcessPoolExecutor | None = None

    def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in one of the gate's worker processes (started at the first call, then
        kept), waited for here (in a worker thread, holding a slot). Done in this process, heavy
        work would hold the interpreter's lock for tenths of a second at a time — building and
        freeing a page's million objects, collecting a PDF layout's garbage — and every other
        request, /health too, would wait for it. `work` and its arguments must pickle (a
        module's function, plain data); what it raises is raised here.

        Raises:
            BrokenProcessPool: the worker process died (e.g. out of memory); the next call
            starts new ones.
        """
        with self._lock:
            if self._workers is None:
                self._workers = ProcessPoolExecutor(
                    self.slots,
                    mp_context=multiprocessing.get_context("spawn"),  # not a threaded fork
                    initializer=_worker_start,
                    max_tasks_per_child=self.TASKS_PER_PROCESS,
                )
            workers = self._workers
        try:
            return workers.submit(_task, work, *args).result()
        except BrokenProcessPool:
            with self._lock:
                if self._workers is workers:
                    self._workers = None
            raise

    def close(self) -> None:
        """Stop the worker processes, if any were started (at exit they stop by themselves)."""
        with self._lock:
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown()

    def _take(self) -> bool:
        with self._lock:
            if self._busy < self.slots:
                self._busy += 1
                return True
            return False

    def _queue(self) -> bool:
        with self._lock:
            if self._waiting >= self.max_waiting:
                return False
            self._waiting += 1
            return True

    def _unqueue(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _busy_error(self) -> HTTPException:
        retry = max(1, ceil(self.wait / 4))
        return HTTPException(
            503,
            f"the server is busy with {self.slots} heavy requests (large feature pages, "
            f"reports, what-ifs); retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )

    async def enter(self) -> None:
        """Take a slot, waiting on the event loop (no worker thread is held meanwhile).

        Raises:
            HTTPException: 503 with Retry-After, when no slot frees in time.
        """
        if self._take():
            return
        if not self._queue():
            raise self._busy_error()
        try:
            deadline = time.monotonic() + self.wait
            while time.monotonic() < deadline:
                await anyio.sleep(self.POLL)
                if self._take():
                    return
        finally:
            self._unqueue()
        raise self._busy_error()

    def leave(self) -> None:
        """Give a slot back."""
        with self._lock:
            self._busy -= 1


WORKER_NICENESS = 10  # heavy work yields the CPUs to the serving process and the database


def _worker_start() -> None:
    """A worker process starts at a lower priority: when the serving process (or PostgreSQL)
    has something to do, it gets a CPU at once, however busy the workers are. It ends when the
    serving process does, even one killed without a word (which cannot stop its workers)."""
    os.nice(WORKER_NICENESS)
    parent = os.getppid()

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, name="cim-orphaned", daemon=True).start()


def _task(work: Callable[..., T], *args: Any) -> T:
    """One task in a worker process: the garbage of the previous one collected first, then what
    lives on put out of the collector's sight, and the task run with the collector paused (a
    page's million objects are freed by reference counting; collections in the middle of it,
    each scanning all of them, made it ten times slower)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return work(*args)
    finally:
        gc.enable()


_ENGINES: dict[str, Engine] = {}


def worker_engine(url: str) -> Engine:
    """In a worker process (see `HeavyGate.run`): an engine for the database at `url`, made at
    the first call and kept for the process's next tasks."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


class Lifetime:
    """ASGI middleware for what a serving process does when it starts and stops the app (its
    lifespan): at the start, what exists by then — modules, routes, settings: some 135,000
    objects that live as long as the process — is put out of the garbage collector's sight
    (`gc.freeze`), since each full collection scanned them all, holding the interpreter's lock
    for about 85 ms in which no request moved; at the end, the heavy worker processes are
    stopped and the log lines still waiting written (a server that ends on a signal skips the
    interpreter's own clean-up, and lost them)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def receiving() -> Any:
            message = await receive()
            if message["type"] == "lifespan.startup":
                gc.freeze()
            elif message["type"] == "lifespan.shutdown":
                gate = getattr(scope["app"].state, "heavy", None)
                if gate is not None:
                    await anyio.to_thread.run_sync(gate.close)
                for handler in logging.getLogger().handlers:
                    handler.flush()  # the request lines still waiting (api.logs)
            return message

        await self.app(scope, receiving, send)
