"""Hostile requests against a running `cim serve`, with `/health` timed all the while from a
process of its own (a fresh connection every 20 ms, as a load balancer's check would): its median
and p99 latency during each case say whether one caller can stall the service (target: p99 under
100 ms on the 2-core development machine). Used by `bench/fuzz_api.py --hostile` (bodies) and
`bench/load.py --hostile` (heavy reads)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import queue
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

PROBE_INTERVAL = 0.02
MB = 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def rss_mb(pid: int) -> float:
    """Memory of a process and its children, in MB."""
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


@contextmanager
def serving(
    url: str, workers: int = 1, ready: str = "/health", **env: str
) -> Iterator[tuple[str, int]]:
    """`cim serve` on a free port for the database at `url`, once `ready` answers 200 (base
    URL, server pid); `env` is added to the server's environment."""
    import httpx

    cim = str(Path(sys.executable).with_name("cim"))
    port = free_port()
    server = subprocess.Popen(
        [cim, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env={**os.environ, "CIM_DATABASE_URL": url, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}{ready}").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the server did not start")
            time.sleep(0.2)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def _health_once(host: str, port: int) -> float:
    """One GET /health on a new connection: seconds until the whole answer was read."""
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=60) as s:
        head = f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        s.sendall(head.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise OSError(data[:80].decode("latin-1"))
    return time.perf_counter() - started


def _probe(base: str, stop: Any, out: Any) -> None:
    host, port = base.removeprefix("http://").split(":")
    while not stop.is_set():
        at = time.monotonic()
        try:
            out.put((at, _health_once(host, int(port))))
        except OSError:
            out.put((at, None))
        time.sleep(PROBE_INTERVAL)


class HealthProbe:
    """/health asked every 20 ms from a process of its own, for as long as the block runs;
    `between(t0, t1)` gives the latencies (ms) of the probes sent in that time, and how many
    failed."""

    def __init__(self, base: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._out = ctx.Event(), ctx.Queue()
        self._process = ctx.Process(target=_probe, args=(base, self._stop, self._out), daemon=True)
        self._samples: list[tuple[float, float | None]] = []

    def __enter__(self) -> HealthProbe:
        self._process.start()
        while not self._drain():  # its first answer: the process runs
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=60)

    def _drain(self) -> int:
        got = 0
        while True:
            try:
                self._samples.append(self._out.get_nowait())
                got += 1
            except queue.Empty:
                return got

    def between(self, t0: float, t1: float) -> tuple[list[float], int]:
        time.sleep(0.2)  # the probes still in flight
        self._drain()
        chosen = [ms for at, ms in self._samples if t0 <= at <= t1]
        return [s * 1000 for s in chosen if s is not None], sum(s is None for s in chosen)


HEADER = (
    f"{'case':<48} {'requests':>8} {'answers':<24} {'s':>5} "
    f"{'health p50':>10} {'p99':>7} {'max':>7} {'probes':>6}"
)


def run_case(
    name: str,
    probe: HealthProbe,
    case: Callable[[], Coroutine[Any, Any, Counter[str]]],
    pid: int | None = None,
) -> dict[str, Any]:
    """Run one case with /health probed meanwhile; print its line."""
    before = rss_mb(pid) if pid else 0.0
    started = time.monotonic()
    answers = asyncio.run(case())
    ended = time.monotonic()
    ms, failures = probe.between(started, ended)
    shown = ", ".join(f"{k}:{v}" for k, v in sorted(answers.items()))
    line = (
        f"{name:<48} {sum(answers.values()):>8} {shown:<24} {ended - started:>5.1f} "
        f"{percentile(ms, 0.5):>8.1f}ms {percentile(ms, 0.99):>5.1f}ms "
        f"{max(ms, default=float('nan')):>5.0f}ms {len(ms):>6}"
    )
    if failures:
        line += f" ({failures} probes failed)"
    if pid:
        line += f"  server {before:.0f} -> {rss_mb(pid):.0f} MB"
    print(line, flush=True)
    return {"name": name, "answers": dict(answers), "health_ms": ms, "failures": failures}


# ---------------------------------------------------------------- the requests


async def send_request(
    base: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    chunks: int = 0,
    declared: int | None = None,
) -> tuple[str, int]:
    """One request on a new connection: its status ("closed" when the server closed the
    connection before answering) and the bytes of body sent before the answer came. The body
    is `body`, or `chunks` megabytes sent one by one while the answer is awaited (with
    Content-Length `declared` when given, else chunked)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
    head = {"Host": f"{host}:{port}", "Content-Type": "application/json", **(headers or {})}
    if body is not None:
        head["Content-Length"] = str(len(body))
    elif chunks:
        if declared is not None:
            head["Content-Length"] = str(declared)
        else:
            head["Transfer-Encoding"] = "chunked"
    writer.write(
        f"{method} {path} HTTP/1.1\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
        + b"\r\n"
    )
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        if body is not None:
            writer.write(body)
            await writer.drain()
            sent += len(body)
            return
        block = b" " * MB
        for _ in range(chunks):
            writer.write(block if declared is not None else b"%x\r\n%b\r\n" % (MB, block))
            await writer.drain()
            sent += MB
        if chunks and declared is None:  # the last chunk of a chunked body (none without one)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.create_task(send_body())
    try:
        status_line = await reader.readuntil(b"\r\n")
        status = status_line.split()[1].decode()
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        length = int(fields["content-length"]) if "content-length" in fields else None
        if length is not None:
            await reader.readexactly(length)
        else:  # chunked answer
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                await reader.readexactly(size + 2)
    except (asyncio.IncompleteReadError, ConnectionError):
        status = "closed"
    finally:
        sender.cancel()
        writer.close()
    return status, sent


async def idle(seconds: float) -> Counter[str]:
    """No requests for `seconds`: /health at rest."""
    await asyncio.sleep(seconds)
    return Counter()


async def repeat(
    seconds: float, clients: int, one: Callable[[int], Awaitable[str]]
) -> Counter[str]:
    """`clients` loops, each calling `one(n)` again and again for `seconds`; the answers."""
    answers: Counter[str] = Counter()
    until = time.monotonic() + seconds

    async def client(n: int) -> None:
        k = n
        while time.monotonic() < until:
            answers[await one(k)] += 1
            k += clients

    await asyncio.gather(*(client(n) for n in range(clients)))
    return answers


def wide_catalogue(areas: int, indicators: int) -> dict[str, Any]:
    """A generated catalogue (valid, if not for its size) of `areas` areas and `indicators`
    indicators, with thresholds: what a hostile what-if may carry."""
    weight = 100 / areas
    per = max(1, indicators // areas)
    provenance = {"status": "provisional", "source": "generated by bench/_hostile.py"}
    return {
        "id": "wide",
        "version": "1",
        "standard": "bench",
        "title_zh": "生成的指标体系",
        "title_en": "generated",
        "areas": [
            {"id": f"a{a}", "name_zh": f"领域{a}", "name_en": f"area {a}", "weight": weight}
            | {"provenance": provenance}
            for a in range(areas)
        ],
        "indicators": [
            {
                "id": f"a{a}.i{i}",
                "name_zh": f"指标{i}",
                "name_en": f"indicator {i}",
                "area": f"a{a}",
                "weight": weight / per,
                "unit": "%",
                "range": {"min": 0, "max": 100},
                "scoring": {"method": "thresholds", "thresholds": [10, 20, 30, 40, 50]},
                "provenance": provenance,
            }
            for a in range(areas)
            for i in range(per)
        ],
        "stars": {"thresholds": {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}, "provenance": provenance},
    }


def what_if_bodies() -> list[tuple[str, bytes]]:
    """The hostile what-ifs: the 2.4 MB catalogue of the issue, one of 200 areas x 2,000
    indicators, one at the limits (50 areas, 500 indicators), one just over a count."""
    bodies = [
        ("2.4 MB", wide_catalogue(200, 9000)),
        ("200 x 2,000", wide_catalogue(200, 2000)),
        ("50 x 500 (the most)", wide_catalogue(50, 500)),
        ("2 x 600", wide_catalogue(2, 600)),
    ]
    return [(name, json.dumps({"catalogue": c}).encode()) for name, c in bodies]
