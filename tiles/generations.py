"""What a serving process knows of each city's data generation without asking the database: a
thread LISTENs on `cim_generation` (migration 0014: a NOTIFY with the city's code whenever one of
its datasets is added, deleted or changes status, sent as the change commits) and counts the
changes per city. A warm answer is trusted only while the city's `token` is the one it was made
under; the token is None while the listener is not connected (and every token changes when it
reconnects, since notifications may have been missed), so a process then asks the database, as
it always did. A change is so seen within the time a notification takes to arrive (well under a
millisecond on one machine), in every process that listens."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import psycopg
from sqlalchemy import Engine

LOG = logging.getLogger("cim.tiles")
CHANNEL = "cim_generation"
Token = tuple[int, int]  # (connection epoch, changes of the city seen in it)


class GenerationWatch:
    """The listening thread of one process (started on first use, a daemon)."""

    def __init__(self, engine: Engine) -> None:
        self.url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._changes: Counter[str] = Counter()
        self._epoch = 0
        self._live = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def token(self, city: str) -> Token | None:
        """The city's token now: equal tokens mean no change of the city's data committed in
        between; None when this process cannot know (it is not listening)."""
        if not self._live:
            self._start()
            return None
        return (self._epoch, self._changes[city])

    def close(self) -> None:
        """Stop listening (the thread ends within a second)."""
        self._stop.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="cim-generations")
                self._thread.daemon = True
                self._thread.start()

    def _run(self) -> None:
        wait = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    with self._lock:
                        self._epoch += 1  # what was missed while not listening is unknown
                        self._live = True
                    wait = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            with self._lock:
                                self._changes[note.payload] += 1
            except psycopg.Error as exc:
                LOG.info("not listening for data changes (%s): warm answers asked again", exc)
            finally:
                self._live = False
            self._stop.wait(wait)
            wait = min(wait * 2, 30.0)
