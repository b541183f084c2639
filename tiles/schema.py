"""The property schema of a city's tiles, decided once per generation of its data.

A city's data changes only when a dataset is added, replaced (a new dataset id) or deleted, so
the ids of its ready datasets name the generation of its data. What a dataset's objects hold
(`DatasetStats`: each attribute's kinds of values and range) never changes once it is ready:
it is measured once, with one aggregate query over that dataset's objects, and kept in
`tile_property_stats`, which this module alone writes. A city's schema is then the statistics
of its datasets merged (`tiles.metadata.decide`), kept in each process per generation: a tile
request costs one look-up of the dataset ids, and no scan of the city.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import orjson
from sqlalchemy import Connection, Engine, text

from tiles.content import CLOUD_TYPE
from tiles.properties import DatasetStats, KeyStats, PropertySchema, decide

Generation = tuple[int, ...]  # the ids of a city's ready datasets, ascending

_GENERATION = text(
    "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM dataset"
    " WHERE city_code = :c AND status = 'ready'"
)
_KEPT = text(
    "SELECT dataset_id, stats FROM tile_property_stats"
    " WHERE city_code = :c AND dataset_id = ANY(:ids)"
)
# numbers by their JSON text, as a reader of the attributes has them: with a fraction or an
# exponent they are floats, else whole numbers
_KEYS = text("""
    SELECT a.key,
           count(*) FILTER (WHERE jsonb_typeof(a.value) = 'string') AS strings,
           count(*) FILTER (WHERE jsonb_typeof(a.value) = 'number') AS numbers,
           count(*) FILTER (WHERE jsonb_typeof(a.value) = 'boolean') AS booleans,
           count(*) FILTER (WHERE jsonb_typeof(a.value) IN ('object', 'array')) AS others,
           count(*) FILTER (WHERE jsonb_typeof(a.value) = 'number'
                            AND a.value::text ~ '[.eE]') AS fractions,
           min(a.value::numeric) FILTER (WHERE jsonb_typeof(a.value) = 'number') AS low,
           max(a.value::numeric) FILTER (WHERE jsonb_typeof(a.value) = 'number') AS high
    FROM city_object o CROSS JOIN LATERAL jsonb_each(o.attributes) a
    WHERE o.city_code = :c AND o.dataset_id = :d AND o.tile_level IS NOT NULL
    GROUP BY a.key""")
_OBJECTS = text("""
    SELECT count(*) AS objects, count(*) FILTER (WHERE type = :cloud) AS clouds,
           count(z_max - z_min) AS heights, coalesce(max(id), 0) AS max_id
    FROM city_object
    WHERE city_code = :c AND dataset_id = :d AND tile_level IS NOT NULL""")
_KEEP = text(
    "INSERT INTO tile_property_stats (city_code, dataset_id, stats)"
    " VALUES (:c, :d, CAST(:stats AS jsonb)) ON CONFLICT DO NOTHING"
)
# statistics of datasets that are gone (replaced or deleted) are of no further use
_FORGET = text("DELETE FROM tile_property_stats WHERE city_code = :c AND dataset_id <> ALL(:ids)")


def generation(conn: Connection, city: str) -> Generation:
    """The ids of the city's ready datasets, ascending."""
    return tuple(conn.execute(_GENERATION, {"c": city}).scalar_one())


def measure(conn: Connection, city: str, dataset_id: int) -> DatasetStats:
    """What a dataset's tiled objects hold (one pass over its objects' attributes)."""
    counts = conn.execute(_OBJECTS, {"c": city, "d": dataset_id, "cloud": CLOUD_TYPE}).one()
    keys = {
        r.key: KeyStats(
            r.strings,
            r.numbers,
            r.booleans,
            r.others,
            r.fractions,
            None if r.low is None else float(r.low),
            None if r.high is None else float(r.high),
        )
        for r in conn.execute(_KEYS, {"c": city, "d": dataset_id})
    }
    return DatasetStats(counts.objects, counts.clouds, counts.heights, counts.max_id, keys)


def city_stats(engine: Engine, city: str, ids: Generation) -> list[DatasetStats]:
    """The statistics of these datasets of a city: kept ones read, missing ones measured now
    and kept (a dataset deleted meanwhile is measured as empty and not kept for long)."""
    with engine.begin() as conn:
        kept = {
            r.dataset_id: DatasetStats.from_json(r.stats)
            for r in conn.execute(_KEPT, {"c": city, "ids": list(ids)})
        }
        missing = [i for i in ids if i not in kept]
        for dataset_id in missing:
            kept[dataset_id] = measure(conn, city, dataset_id)
            stats = orjson.dumps(kept[dataset_id].to_json()).decode()
            conn.execute(_KEEP, {"c": city, "d": dataset_id, "stats": stats})
        if missing:
            conn.execute(_FORGET, {"c": city, "ids": list(ids)})
    return [kept[i] for i in ids]


class CitySchemas:
    """The schema of each city's current data, per generation, for one process (the most
    recently used cities kept)."""

    def __init__(self, engine: Engine, cities: int = 256) -> None:
        self.engine = engine
        self.cities = cities
        self._items: OrderedDict[str, tuple[Generation, PropertySchema]] = OrderedDict()
        self._lock = threading.Lock()
        self.decided = 0  # how many schemas this process decided (not found in memory)

    def get(self, city: str, ids: Sequence[int]) -> PropertySchema:
        """The schema of a city whose ready datasets are `ids`."""
        key = tuple(ids)
        with self._lock:
            item = self._items.get(city)
            if item is not None and item[0] == key:
                self._items.move_to_end(city)
                return item[1]
        schema = decide(city_stats(self.engine, city, key))
        with self._lock:
            self._items[city] = (key, schema)
            self._items.move_to_end(city)
            self.decided += 1
            while len(self._items) > self.cities:
                self._items.popitem(last=False)
        return schema
