"""Failed authentications, counted per client address: after `limit` failures within `window`
seconds a client is refused (429, with Retry-After) until its oldest failure has aged out, so
keys cannot be guessed at speed. In this process's memory: each server process counts its own."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from math import ceil
from typing import Any

from cim.errors import TooManyAttempts

MAX_CLIENTS = 100_000  # addresses with recent failures kept at most


class FailureLimiter:
    """Failures per client within a sliding window."""

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
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times
            self._failures.move_to_end(client)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)


class BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes (413, problem+json) before
    anything parses them — by Content-Length when given, else by counting as they arrive."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
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
                if seen > self.limit:  # the app gets no more; its answer is replaced below
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
                await self._refuse(send)

        await self.app(scope, counted, answering)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"the request body is larger than the limit of {self.limit:,} bytes",
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
