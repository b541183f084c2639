"""Failed authentications, counted per client address: after `limit` failures within `window`
seconds a client is refused (429, with Retry-After) until its oldest failure has aged out, so
keys cannot be guessed at speed. In this process's memory: each server process counts its own."""

from __future__ import annotations

import threading
import time
from collections import deque
from math import ceil

from cim.errors import TooManyAttempts


class FailureLimiter:
    """Failures per client within a sliding window."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
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
        """Count a failure (and forget clients that have none left, so memory stays small)."""
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:
                for key in [k for k, v in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[key]
