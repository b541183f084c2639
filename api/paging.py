"""What an items page needs to know of a city besides the page itself, kept per generation of the
city's data so that a page of 100 objects costs what its 100 objects cost, not what the city does:

- how many objects match (`numberMatched`): an exact count of a city is a scan of it (30 ms at
  100,000 objects, 300 ms at a million), so it is counted once per generation and per filter;
- where a deep page starts: `OFFSET n` walks n index entries (20 ms at 100,000), so the ids at
  every `STRIDE`-th place of the whole city are kept, and a page starts from the one before its
  offset and walks at most `STRIDE - 1` entries.

A generation is the ids, states and import times of the city's datasets: every ingest,
replacement, deletion and finish changes it (objects are written, replaced and deleted only
with their dataset, and a dataset id is never reused). Each statement here reads the
generation in the same statement (so in the same snapshot) as what it counts, and a page is
read with its generation too (`api.store.search_items`): what is kept is only ever used with the
data it was made from, with no transaction around the statements.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from cim.errors import NotFound

# places between two kept ids: memory of 8 bytes per STRIDE objects (80 KB for 10 million), and
# at most STRIDE - 1 index entries walked by a page (under a millisecond)
STRIDE = 1000
# the city's generation and whether it exists, as columns of a statement (city code :city)
NOW = """
    (SELECT coalesce(string_agg(id::text || ':' || status || ':'
                                || coalesce(extract(epoch FROM imported_at)::text, ''),
                                ',' ORDER BY id), '')
     FROM dataset WHERE city_code = :city) AS generation,
    EXISTS (SELECT 1 FROM city WHERE code = :city) AS city_exists"""
_ORDER = text(f"""
    WITH anchors AS MATERIALIZED (
      SELECT id FROM (
        SELECT id, row_number() OVER (ORDER BY id) AS place
        FROM city_object WHERE city_code = :city) s
      WHERE place % :stride = 1)
    SELECT {NOW},
      ARRAY(SELECT id FROM anchors ORDER BY id) AS anchors,
      (SELECT count(*) FROM city_object
       WHERE city_code = :city AND id >= (SELECT max(id) FROM anchors)) AS rest""")  # noqa: S608


@dataclass(frozen=True)
class CityOrder:
    """A city's objects in id order, as a page needs them: how many there are, and the ids at
    places 0, STRIDE, 2 × STRIDE, ..."""

    total: int
    anchors: tuple[int, ...]
    stride: int = STRIDE

    def start(self, offset: int) -> tuple[int, int]:
        """Where the page at `offset` starts: the first id not below a kept one, and how many
        objects to skip from there."""
        if not self.anchors:
            return 0, offset
        place = min(offset // self.stride, len(self.anchors) - 1)
        return self.anchors[place], offset - place * self.stride


def _now(row: Any, city: str) -> str:
    """The generation a statement read (with NOW), after checking that the city exists.

    Raises:
        NotFound: no such city.
    """
    if not row.city_exists:
        raise NotFound(f"no city {city!r}")
    return str(row.generation)


class CityPaging:
    """For one database: each city's order and filtered counts, for the generation they were
    read at, for the last `size` cities and `counts` filters asked about (`stride`: the places
    between two kept ids of an order read from now on; tests use a small one)."""

    def __init__(self, size: int = 64, counts: int = 256, stride: int = STRIDE) -> None:
        self.size = size
        self.counts = counts
        self.stride = stride
        self._orders: OrderedDict[str, tuple[str, CityOrder]] = OrderedDict()
        self._counts: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._lock = threading.Lock()

    def order(self, conn: Connection, city: str) -> tuple[str, CityOrder]:
        """The city's order and the generation it is of: the one kept, else read on `conn`
        (the caller finds out whether the generation is still the city's, see `forget`).

        Raises:
            NotFound: no such city.
        """
        with self._lock:
            kept = self._orders.get(city)
            if kept is not None:
                self._orders.move_to_end(city)
                return kept
        stride = self.stride
        row = conn.execute(_ORDER, {"city": city, "stride": stride}).one()
        generation = _now(row, city)
        anchors = tuple(row.anchors)
        total = (len(anchors) - 1) * stride + row.rest if anchors else 0
        found = (generation, CityOrder(total, anchors, stride))
        with self._lock:
            self._orders[city] = found
            self._orders.move_to_end(city)
            while len(self._orders) > self.size:
                self._orders.popitem(last=False)
        return found

    def forget(self, city: str, generation: str) -> None:
        """Drop what is kept of the city at `generation` (its data has moved on)."""
        with self._lock:
            kept = self._orders.get(city)
            if kept is not None and kept[0] == generation:
                del self._orders[city]
            for old in [k for k in self._counts if k[0] == city and k[1] == generation]:
                del self._counts[old]

    def count(
        self, conn: Connection, city: str, generation: str, where: str, params: dict[str, Any]
    ) -> tuple[str, int]:
        """How many of the city's objects `where` (SQL over city_object o, with `params`)
        matches, and at which generation: kept for `generation`, else counted on `conn` (at the
        generation the city has now, which the caller compares).

        Raises:
            NotFound: no such city.
        """
        frozen = tuple(sorted((k, _hashable(v)) for k, v in params.items()))
        with self._lock:
            key = (city, generation, where, frozen)
            if key in self._counts:
                self._counts.move_to_end(key)
                return generation, self._counts[key]
        matched = f"(SELECT count(*) FROM city_object o WHERE {where}) AS matched"  # noqa: S608
        row = conn.execute(text(f"SELECT {NOW}, {matched}"), params).one()
        now = _now(row, city)
        with self._lock:
            self._counts[(city, now, where, frozen)] = int(row.matched)
            while len(self._counts) > self.counts:
                self._counts.popitem(last=False)
        return now, int(row.matched)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


_BY_ENGINE: weakref.WeakKeyDictionary[Engine, CityPaging] = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def paging(engine: Engine) -> CityPaging:
    """The paging knowledge kept for `engine`'s database in this process (each engine its own:
    an app's, or a heavy worker process's, see `api.limits.worker_engine`)."""
    with _BY_ENGINE_LOCK:
        found = _BY_ENGINE.get(engine)
        if found is None:
            found = _BY_ENGINE[engine] = CityPaging()
        return found
