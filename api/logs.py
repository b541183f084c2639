"""The log lines of a serving process: one JSON line per request (api.ops) and per unexpected
error, written to standard error in batches. Python's standard error is line-buffered, so a
plain `StreamHandler` makes a write system call for every request; at thousands of warm tiles a
second that was a tenth of a request's time. Here lines wait about `EVERY` seconds (twice that
at most: a timer thread writes what is waiting when no request comes), or until `MOST` of them
are waiting, and go out together; whatever waits is written when the process ends
(`logging.shutdown`)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

EVERY = 0.5  # seconds a line may wait
MOST = 256  # lines that may wait


class BatchedLines(logging.Handler):
    """A handler writing formatted records to a stream in batches (see the module)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self._lines: list[str] = []
        self._last = time.monotonic()
        threading.Thread(target=self._timer, name="cim-log-lines", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
            if len(self._lines) >= MOST or time.monotonic() - self._last >= EVERY:
                self._write()
        except Exception:  # noqa: BLE001 - as logging's own handlers: never raise from a log call
            self.handleError(record)

    def flush(self) -> None:
        with self.lock or threading.Lock():
            self._write()

    def _write(self) -> None:
        """Write what waits (the caller holds the handler's lock)."""
        self._last = time.monotonic()
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            self.stream.write(text)
            self.stream.flush()

    def _timer(self) -> None:
        while True:
            time.sleep(EVERY)
            if self._lines and time.monotonic() - self._last >= EVERY:
                try:
                    self.flush()
                except (OSError, ValueError):  # the stream is closed: the process is ending
                    return


def configure() -> None:
    """The logging of a serving process: the message alone, INFO and above, in batches. A
    record does not look for its caller's file and line, thread or process (none is in the
    line; as Python's logging documentation advises for speed: a quarter of a log call)."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[BatchedLines()])
