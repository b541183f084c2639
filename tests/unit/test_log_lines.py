"""A serving process writes its log lines in batches (api.logs): every line, in order, one write
for many lines, and none waits longer than `EVERY` seconds when no more come."""

from __future__ import annotations

import io
import logging
import time

from api.logs import EVERY, MOST, BatchedLines


class _Counted(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_are_written_in_batches_in_order_and_none_waits_long() -> None:
    stream = _Counted()
    handler = BatchedLines(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("cim.test-batched")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        for n in range(MOST * 3):
            log.info("line %d", n)
        assert stream.getvalue().splitlines() == [f"line {n}" for n in range(MOST * 3)]
        assert stream.writes <= 4  # batches of MOST (and maybe one on the clock), not 768
        log.info("alone")  # nothing follows it: the timer writes it
        deadline = time.monotonic() + EVERY * 4
        while not stream.getvalue().endswith("alone\n"):
            assert time.monotonic() < deadline, "a lone line waited too long"
            time.sleep(0.05)
        log.info("last")
        handler.flush()  # what logging.shutdown does at exit
        assert stream.getvalue().endswith("alone\nlast\n")
    finally:
        log.removeHandler(handler)


def test_log_timestamps_are_isoformat_to_the_millisecond() -> None:
    import re
    import time
    from datetime import UTC, datetime

    from api.ops import _timestamp

    for _ in range(3):
        before = datetime.now(UTC)
        stamp = _timestamp()
        after = datetime.now(UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", stamp), stamp
        parsed = datetime.fromisoformat(stamp)
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= parsed <= after
        time.sleep(0.6)  # the next second's text is made anew
