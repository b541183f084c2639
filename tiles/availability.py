"""Which tiles of a city exist and which are over-full, read once per data generation and kept
in this process: what the implicit tileset (tiles.implicit), its subtree files and the parts of
over-full tiles (tiles.split) are made from.

A city's generation (the ids of its ready datasets, tiles.schema.generation) changes with every
ingest, replacement or deletion, so what is kept for a generation is right for as long as it
lasts; asking for the generation is one short query, and the GROUP BY over the city's objects
runs only when it changed. Subtree files are kept with it, and so are part contents, in a byte
budget (least recently used out first).

Parts are kept in `tile_cache` too (tiles.parts), so that a seeded city (`seed`) serves every
content without making it, and a restart loses none.
"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson
import psycopg
from numpy.typing import NDArray
from sqlalchemy import Connection, Engine, text

from cim.db.cities import require_city
from cim.errors import Conflict, NotFound
from cim.settings import TileSettings
from tiles.content import CLOUD_TYPE, part_contents
from tiles.implicit import (
    KeySet,
    explicit_tileset,
    implicit_tileset,
    is_subtree_root,
    key_set,
    subtree,
)
from tiles.parts import (
    CELL_FORMATS,
    batches,
    cell_made_with,
    cell_variant,
    etag,
    keep,
    kept_content,
    kept_keys,
    may_keep,
)
from tiles.properties import PropertySchema, SchemaMismatch
from tiles.schema import Generation, generation
from tiles.split import Pooled, plan, weight_sql

if TYPE_CHECKING:
    from tiles.service import TileService

# {weight} is tiles.split's SQL expression: nothing from a request is formatted in
_KEYS_SQL = """
    SELECT o.tile_level, o.tile_x, o.tile_y, min(o.z_min) AS low, max(o.z_max) AS high,
           sum({weight}) AS weight,
           CASE WHEN bool_and(o.type = :cloud) THEN 'pnts'
                WHEN bool_or(o.type = :cloud) THEN 'cmpt' ELSE 'b3dm' END AS format_1_0
    FROM city_object o
    WHERE o.city_code = :c AND o.tile_level IS NOT NULL
    GROUP BY o.tile_level, o.tile_x, o.tile_y"""
# the city's tiles are a few thousand groups of a million rows: within PostgreSQL's default 4 MB
# of work memory it sorted the rows and spilt them to disk (1.06 s for a million buildings), in
# 32 MB it hashes them (0.56 s); for this query's transaction only
_HASHED = text("SET LOCAL work_mem = '32MB'")
_POOLED_SQL = """
    SELECT o.id, o.tile_level, o.tile_x, o.tile_y,
           (ST_XMin(o.bbox) + ST_XMax(o.bbox)) / 2 AS lon,
           (ST_YMin(o.bbox) + ST_YMax(o.bbox)) / 2 AS lat, coalesce(o.size, 0) AS size,
           {weight} AS weight, (o.type = :cloud)::int AS cloud
    FROM city_object o
    JOIN unnest(CAST(:l AS int[]), CAST(:x AS int[]), CAST(:y AS int[])) AS k(l, x, y)
      ON o.tile_level = k.l AND o.tile_x = k.x AND o.tile_y = k.y
    WHERE o.city_code = :c"""


class _City:
    """What is kept of one city for one generation."""

    def __init__(
        self,
        ids: Generation,
        keys: KeySet,
        full: int,
        parts: dict[tuple[int, int, int], NDArray[np.int64]],
        weights: dict[tuple[int, int, int], int],
        formats_1_0: dict[tuple[int, int, int], str],
    ) -> None:
        self.ids = ids
        self.keys = keys
        self.full = full  # tiles of the city that are over-full
        self.parts = parts
        self.weights = weights  # each part's estimated content bytes (tiles.split)
        # each cell's 3D Tiles 1.0 content format, by the tiles' rule (tiles.tileset): b3dm,
        # pnts for point clouds alone, cmpt for both
        self.formats_1_0 = formats_1_0
        # the cells whose content is their tile's own (served as the tile route serves it)
        self.native = {(int(k[0]), int(k[1]), int(k[2])) for k in keys.keys} - set(parts)
        self.tileset = orjson.dumps(implicit_tileset(keys)) if len(keys) else b""
        self.subtrees: dict[tuple[int, int, int], bytes | None] = {}
        self.explicit: dict[str, bytes] = {}  # by format, made on first request (`explicit`)


class Availability:
    """The cells with content of each city, per generation, for the most recently used cities;
    `budget` is the most bytes a content may take (tiles.split; by default the service's
    `content_max_kb`, 2 MB)."""

    def __init__(
        self, service: TileService, budget: int | None = None, cities: int = 64, part_mb: int = 256
    ) -> None:
        self.service = service
        self.engine: Engine = service.engine
        self.budget = budget or service.settings.content_max_kb * 1000
        weight = weight_sql(service.settings.meshopt)
        self._keys = text(_KEYS_SQL.format(weight=weight))
        self._pooled = text(_POOLED_SQL.format(weight=weight))
        self.cities = cities
        self._items: OrderedDict[str, _City] = OrderedDict()
        # part contents and their ETags
        self._parts: OrderedDict[
            tuple[str, Generation, tuple[int, int, int], str], tuple[bytes, str]
        ]
        self._parts = OrderedDict()
        self._part_bytes = 0
        self._part_budget = part_mb * 1024 * 1024
        self._lock = threading.Lock()
        self.reads = 0  # how many times the keys were read from the database (for tests)
        # where part contents came from: this process's memory, tile_cache, or made now
        self.results: Counter[str] = Counter()
        self.variant = cell_variant(service.settings, self.budget)

    def _city(self, city: str) -> _City:
        # one snapshot for the generation and the keys, so that they belong together
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            ids = generation(conn, city)
            with self._lock:
                kept = self._items.get(city)
                if kept is not None and kept.ids == ids:
                    self._items.move_to_end(city)
                    return kept
            require_city(conn, city)
            conn.execute(_HASHED)
            rows = conn.execute(self._keys, {"c": city, "cloud": CLOUD_TYPE}).all()
            native = {(r.tile_level, r.tile_x, r.tile_y) for r in rows}
            full = {
                (r.tile_level, r.tile_x, r.tile_y) for r in rows if int(r.weight or 0) > self.budget
            }
            parts, weights, of_parts = self._plan(conn, city, full, native)
            # a cell's 1.0 format is its tile's, or for a part that of the objects given to it
            formats = {(r.tile_level, r.tile_x, r.tile_y): r.format_1_0 for r in rows} | of_parts
        keys = key_set(
            # a pooled tile keeps at least one object in place, so every tile is still a cell
            sorted(native | set(parts)),
            min((r.low for r in rows), default=0.0),
            max((r.high for r in rows), default=0.0),
            split=bool(parts),
        )
        item = _City(ids, keys, len(full), parts, weights, formats)
        with self._lock:
            self.reads += 1
            self._items[city] = item
            self._items.move_to_end(city)
            while len(self._items) > self.cities:
                self._items.popitem(last=False)
        return item

    def _plan(
        self,
        conn: Connection,
        city: str,
        full: set[tuple[int, int, int]],
        native: set[tuple[int, int, int]],
    ) -> tuple[
        dict[tuple[int, int, int], NDArray[np.int64]],
        dict[tuple[int, int, int], int],
        dict[tuple[int, int, int], str],
    ]:
        """Where the objects of over-full tiles go, each part's estimated bytes and its 3D
        Tiles 1.0 format (by its objects). A tile that receives objects from above has its own
        objects pooled too (one content per cell, within the budget), so the pool grows until
        no tile outside it receives any: a few rounds."""
        pooled: set[tuple[int, int, int]] = set()
        chunks: list[NDArray[np.float64]] = []
        wanted = set(full)
        parts: dict[tuple[int, int, int], NDArray[np.int64]] = {}
        table = np.zeros((0, len(_POOLED_COLUMNS)))
        objects = _pooled(table)
        while wanted:
            chunks.append(_pooled_rows(conn, self._pooled, city, wanted))
            table = np.concatenate(chunks)
            objects = _pooled(table)
            pooled |= wanted
            parts = plan(objects, self.budget)
            wanted = (set(parts) & native) - pooled
        # each part's weight and clouds, by its objects' places in the table (ids are unique)
        order = np.argsort(objects.ids, kind="stable")
        ids = objects.ids[order]
        weight = objects.weight[order]
        cloud = table[order, _POOLED_COLUMNS.index("cloud")] > 0
        weights, formats = {}, {}
        for key, members in parts.items():
            at = np.searchsorted(ids, members)
            weights[key] = int(weight[at].sum())
            mine = int(cloud[at].sum())
            formats[key] = "b3dm" if not mine else "pnts" if mine == len(members) else "cmpt"
        return parts, weights, formats

    def count(self, city: str) -> int:
        """How many contents the city's tiles have.

        Raises:
            NotFound: no such city.
        """
        return len(self._city(city).keys)

    def over_full(self, city: str) -> int:
        """How many of the city's tiles are over the budget (their objects given out in parts:
        only the implicit tileset has parts).

        Raises:
            NotFound: no such city.
        """
        return self._city(city).full

    def native(self, city: str) -> set[tuple[int, int, int]]:
        """The tiles whose own content the implicit tileset serves: every tile with objects,
        but for over-full ones (their objects given out in parts, which `seed` makes).

        Raises:
            NotFound: no such city.
        """
        return set(self._city(city).native)

    def explicit(self, city: str, fmt: str = "glb") -> bytes:
        """The explicit tileset JSON over the same cells as the implicit one, serialized: for
        a city with over-full tiles, whose parts it names (`cells/...`); 3D Tiles 1.1 (GLB), or
        with `fmt` b3dm 3D Tiles 1.0 (each cell's content named by its format).

        Raises:
            NotFound: no such city, or nothing in it to draw.
        """
        item = self._city(city)
        if fmt not in item.explicit:
            doc = self._explicit(item, fmt)
            if doc is None:
                raise NotFound(f"city {city!r} has no objects to show in 3D")
            item.explicit[fmt] = orjson.dumps(doc)
        return item.explicit[fmt]

    @staticmethod
    def _explicit(item: _City, fmt: str) -> dict[str, Any] | None:
        return explicit_tileset(item.keys, item.formats_1_0 if fmt == "b3dm" else None)

    def export(
        self,
        city: str,
        out: Path,
        fmt: str = "glb",
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Write the explicit tileset over cells (`explicit`) as static files under `out`:
        tileset.json and cells/...; returns how many contents. For a city with over-full tiles,
        whose whole contents would pass the budget.

        Raises:
            NotFound: no such city, or nothing in it to draw.
            Conflict: the city's data changed while its contents were made.
        """
        item = self._city(city)
        doc = self._explicit(item, fmt)
        if doc is None:
            raise NotFound(f"city {city!r} has no objects to show in 3D")
        from tiles.service import write_static

        return write_static(out, doc, lambda key: self.cell(city, *key, fmt=fmt)[0], progress)

    def tileset(self, city: str) -> bytes:
        """The implicit tileset JSON of a city, serialized.

        Raises:
            NotFound: no such city, or nothing in it to draw.
        """
        body = self._city(city).tileset
        if not body:
            raise NotFound(f"city {city!r} has no objects to show in 3D")
        return body

    def subtree(self, city: str, level: int, x: int, y: int) -> bytes:
        """The subtree file rooted at (level, x, y).

        Raises:
            NotFound: no such city, or no subtree there (not a subtree root, or nothing in it).
        """
        if not is_subtree_root(level, x, y):
            raise NotFound(f"no subtree {level}/{x}/{y}: subtrees start at levels 0, 6, 12, ...")
        item = self._city(city)
        key = (level, x, y)
        if key not in item.subtrees:
            item.subtrees[key] = subtree(item.keys, level, x, y)
        data = item.subtrees[key]
        if data is None:
            raise NotFound(f"subtree {level}/{x}/{y} of city {city!r} has no tiles")
        return data

    def cell(self, city: str, level: int, x: int, y: int, fmt: str = "glb") -> tuple[bytes, str]:
        """The content of a cell of a split city's tilesets (`cells/...`) and its ETag: the
        objects given to it (tiles.split), or else its tile's own content; GLB, or for `fmt`
        b3dm the 3D Tiles 1.0 content by the tiles' rule. A part is taken from this process's
        memory, else from `tile_cache` (tiles.parts), else made now and kept in both.

        Raises:
            NotFound: no such city, or no content at this cell.
            Conflict: the city's data changed while the content was made.
        """
        item = self._city(city)
        key = (level, x, y)
        ids = item.parts.get(key)
        if ids is None:
            if key not in item.native:
                raise NotFound(f"no content at cell {level}/{x}/{y} of city {city!r}")
            return self.service.tile(city, key, fmt)
        cache_key = (city, item.ids, key, fmt)
        with self._lock:
            known = self._parts.get(cache_key)
            if known is not None:
                self._parts.move_to_end(cache_key)
        if known is not None:
            self._counted("memory")
            return known
        schema = self.service.schemas.get(city, item.ids)
        stamp = cell_made_with(schema, item.ids)
        with self.service.reads.connect() as conn:
            known = kept_content(conn, city, key, self.variant, stamp, fmt)
        if known is not None:
            self._remember(cache_key, *known)
            self._counted("database")
            return known
        made = self.make(city, item.ids, [(key, ids.tolist())], schema, fmt=fmt)
        if key not in made:
            raise Conflict(f"the data of city {city!r} is changing: ask again")
        return made[key], etag(made[key])

    def seed(
        self,
        city: str,
        progress: Callable[[int, int], None] | None = None,
        workers: int | None = None,
    ) -> int:
        """Make and keep in `tile_cache` every part of a split city that is not kept for its
        data as it is (the cells whose content is a tile's own are the tiles `TileService.seed`
        makes), a batch of parts per query, with one process per CPU by default; returns how
        many parts the city has (0: none of its tiles is over-full).

        Raises:
            NotFound: no such city.
            Conflict: the city's data kept changing while its parts were made.
        """
        total, ids, work = self._part_work(city)
        done = total - sum(len(batch) for batch in work)  # kept already
        workers = min(workers or os.cpu_count() or 1, len(work))
        if workers > 1:
            from tiles.service import run_shares

            run_shares(
                self.engine, workers, self._part_shares(city, ids, work), done, total, progress
            )
            return total
        if progress:
            progress(done, total)
        for batch in work:
            done += _seed_batch(self, city, ids, batch)
            if progress:
                progress(done, total)
        return total

    def seed_all(
        self,
        city: str,
        progress: Callable[[int, int], None] | None = None,
        workers: int | None = None,
    ) -> int:
        """Make and keep every content of a city not kept for its data as it is: the tiles
        that are their own cell (as `TileService.seed` with `only=native`) and the parts of
        over-full tiles (as `seed`), given to one pool of processes (one per CPU by default),
        parts first. In two pools, one after the other, each pool's last shares left a CPU
        idle, and the parts' processes started new connections. `progress` hears (contents
        done, contents). Returns how many contents the city has.

        Raises:
            NotFound: no such city.
            Conflict: the city's data kept changing while its contents were made.
        """
        keys = sorted(self.native(city))
        workers = workers or os.cpu_count() or 1
        if workers == 1:
            count = self.service.seed(city, progress, workers=1, only=set(keys))

            def then(done: int, total: int) -> None:
                if progress:
                    progress(count + done, count + total)

            return count + self.seed(city, then, workers=1)
        from tiles.service import make_share, run_shares

        total_parts, ids, work = self._part_work(city)
        done = total_parts - sum(len(batch) for batch in work)  # kept already
        shares = self._part_shares(city, ids, work)  # parts first: the biggest shares
        shares += [
            (make_share, args) for args in self.service.seed_shares(city, keys, workers) if args[3]
        ]
        run_shares(self.engine, workers, shares, done, len(keys) + total_parts, progress)
        return len(keys) + total_parts

    def _part_work(self, city: str) -> tuple[int, Generation, list[Batch]]:
        """How many parts the city has, its generation and the batches of the parts not kept
        for it (those of older data or code forgotten now).

        Raises:
            NotFound: no such city.
        """
        item = self._city(city)
        if not item.parts:
            return 0, item.ids, []
        schema = self.service.schemas.get(city, item.ids)  # measured before any worker starts
        stamp = cell_made_with(schema, item.ids)
        from tiles.service import forget_stale  # the module that writes tile_cache

        with self.engine.begin() as conn:
            # parts of the city's older data (or code): never served again, so let them go
            for stale in CELL_FORMATS.values():
                forget_stale(conn, city, stale, self.variant, stamp)
            kept = kept_keys(conn, city, self.variant, stamp)
        todo = [key for key in item.parts if key not in kept]
        work = [
            [(key, item.parts[key].tolist()) for key in batch]
            for batch in batches(todo, item.weights)
        ]
        return len(item.parts), item.ids, work

    def _part_shares(
        self, city: str, ids: Generation, work: list[Batch]
    ) -> list[tuple[Callable[..., int], tuple[Any, ...]]]:
        """A `run_shares` share of `_worker_batch` for each batch of `work`."""
        url = self.engine.url.render_as_string(hide_password=False)
        fixed = (url, self.service.settings, self.budget, city, ids)
        return [(_worker_batch, (*fixed, batch)) for batch in work]

    def make(
        self,
        city: str,
        ids: Generation,
        parts: Sequence[tuple[tuple[int, int, int], Sequence[int]]],
        schema: PropertySchema,
        remember: bool = True,
        fmt: str = "glb",
    ) -> dict[tuple[int, int, int], bytes]:
        """Make these parts (cell, object ids) in one query, as GLB or (`fmt` b3dm) 3D Tiles
        1.0 content, and keep them in `tile_cache` (unless a dataset of the city is changing)
        and, with `remember`, in this process's memory. Returns what was made: nothing when
        the city's generation is no longer `ids`.

        Raises:
            Conflict: an object holds a value the schema has no room for (data changing).
        """
        stamp = cell_made_with(schema, ids)
        made: dict[tuple[int, int, int], bytes] = {}
        with self.engine.begin() as conn:
            keeping = may_keep(conn, city)
            if generation(conn, city) != ids:
                return made
            meshopt = self.service.settings.meshopt
            try:
                for key, content in part_contents(conn, city, parts, schema, meshopt, fmt):
                    if content is None:
                        raise Conflict(f"the data of city {city!r} changed: ask again")
                    made[key] = content
            except SchemaMismatch as e:
                raise Conflict(f"the data of city {city!r} is changing: ask again") from e
            if keeping:
                keep(conn, city, made, self.variant, stamp, fmt)
        self._counted("made", len(made))
        if remember:
            for key, content in made.items():
                self._remember((city, ids, key, fmt), content, etag(content))
        return made

    def _remember(
        self, cache_key: tuple[str, Generation, tuple[int, int, int], str], content: bytes, tag: str
    ) -> None:
        with self._lock:
            old = self._parts.pop(cache_key, None)
            if old is not None:
                self._part_bytes -= len(old[0])
            self._parts[cache_key] = (content, tag)
            self._part_bytes += len(content)
            while self._part_bytes > self._part_budget and self._parts:
                _, (dropped, _) = self._parts.popitem(last=False)
                self._part_bytes -= len(dropped)

    def _counted(self, result: str, n: int = 1) -> None:
        with self._lock:
            self.results[result] += n


# the columns of `_POOLED_SQL`, read as one float64 array (ids are far below 2**53)
_POOLED_COLUMNS = ("id", "tile_level", "tile_x", "tile_y", "lon", "lat", "size", "weight", "cloud")


def _pooled_rows(
    conn: Connection, query: Any, city: str, keys: set[tuple[int, int, int]]
) -> NDArray[np.float64]:
    """The rows of the objects of these tiles as one array, a column per `_POOLED_COLUMNS`
    (read as plain tuples and converted at once: as named rows and a list per column it took
    longer than the query)."""
    params = {
        "c": city,
        "cloud": CLOUD_TYPE,
        "l": [k[0] for k in keys],
        "x": [k[1] for k in keys],
        "y": [k[2] for k in keys],
    }
    compiled = query.compile(dialect=conn.dialect)
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    with raw.cursor() as cursor:
        rows = cursor.execute(str(compiled), compiled.construct_params(params)).fetchall()
    if not rows:
        return np.zeros((0, len(_POOLED_COLUMNS)))
    return np.array(rows, dtype=np.float64)


def _pooled(table: NDArray[np.float64]) -> Pooled:
    """The objects of over-full tiles (`_pooled_rows`) as `tiles.split` takes them."""
    return Pooled(
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int64),
        table[:, 2].astype(np.int64),
        table[:, 3].astype(np.int64),
        table[:, 4],
        table[:, 5],
        table[:, 6],
        table[:, 7].astype(np.int64),
    )


Batch = list[tuple[tuple[int, int, int], list[int]]]  # parts made in one query: cell, ids


def _seed_batch(available: Availability, city: str, ids: Generation, batch: Batch) -> int:
    """Make and keep one batch of parts while seeding; how many.

    Raises:
        Conflict: the city's data changed since generation `ids`.
    """
    schema = available.service.schemas.get(city, ids)
    if len(available.make(city, ids, batch, schema, remember=False)) < len(batch):
        raise Conflict(f"the data of city {city!r} is changing: seed it again")
    return len(batch)


_WORKERS: dict[tuple[str, int], Availability] = {}  # a seeding process's own, by url and budget


def _worker_batch(
    url: str, settings: TileSettings, budget: int, city: str, ids: Generation, batch: Batch
) -> int:
    """A seeding process's batch of parts (`Availability._part_shares`); how many."""
    from tiles.service import TileService, worker_engine

    available = _WORKERS.get((url, budget))
    if available is None:
        service = TileService(worker_engine(url), settings)
        available = _WORKERS[(url, budget)] = Availability(service, budget)
    return _seed_batch(available, city, ids, batch)
