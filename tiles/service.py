"""Tiles for a city, on demand: the tileset JSON from tile statistics, and tile contents made on
first request and kept in the `tile_cache` table, which this module alone writes. The database
forgets the cached tiles a dataset touches when that dataset is replaced, deleted or finished
(a trigger, migration 0007), so any writer of datasets keeps the cache right; a tile made while
a dataset of its city is changing is served but not kept.

A kept tile is found by its city, key, format and `variant`: a digest of the settings that change
a content's bytes (tiles.cache_key), so processes with other settings keep their own tiles. It
is served only while its `made_with` still matches: a digest of the code and libraries that write
contents and of the city's property schema (tiles.schema), so an upgrade, or a dataset that
changes a property's type, makes it again, in place (migration 0013).

Warm answers need no database at all while the process listens for data changes
(tiles.generations): a tile whose ETag was learnt under the city's current token, and whose
content is in memory, is served from memory (`warm`); so is the tileset JSON. Content URIs in
the tileset JSON served over HTTP carry the city's content version (`?v=`), which changes with
the data, the settings and the code, so a client may keep those answers for good."""

from __future__ import annotations

import gzip
import hashlib
import multiprocessing
import os
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from cim.bulk import fewer_collections
from cim.db.cities import require_city
from cim.db.scenarios import OBJECTS
from cim.errors import Conflict, InvalidInput, NotFound
from cim.settings import TileSettings
from cim.tiling import MAX_LEVEL
from tiles.cache_key import made_with, variant
from tiles.content import CLOUD_TYPE, rows_contents, tile_content, tile_rows
from tiles.generations import GenerationWatch, Token
from tiles.properties import PropertySchema, SchemaMismatch
from tiles.schema import CitySchemas, Generation, generation
from tiles.tileset import Key, TileStats, build_tileset

FORMATS = {"glb": "1.1", "b3dm": "1.0"}
VERSIONS = {version: fmt for fmt, version in FORMATS.items()}
# 1.0 content URIs name their format (b3dm, pnts or cmpt); all are made as the 1.0 format
EXTENSIONS = {"glb": "glb", "b3dm": "b3dm", "pnts": "b3dm", "cmpt": "b3dm"}
# where a process's tile contents came from: its memory, the database cache, or made now
TILE_SOURCES = ("memory", "database", "made")


def format_of(version: str) -> str:
    """The content format of a 3D Tiles version ("1.1" -> glb, "1.0" -> b3dm).

    Raises:
        InvalidInput: another version.
    """
    if version not in VERSIONS:
        raise InvalidInput(f"3D Tiles version {version!r} is not offered (1.0 or 1.1)")
    return VERSIONS[version]


_STATS = text("""
    SELECT tile_level, tile_x, tile_y, count(*) AS n,
           min(ST_XMin(bbox)) AS west, min(ST_YMin(bbox)) AS south,
           max(ST_XMax(bbox)) AS east, max(ST_YMax(bbox)) AS north,
           min(z_min) AS low, max(z_max) AS high, max(size) AS max_size,
           CASE WHEN bool_and(type = :cloud) THEN 'only'
                WHEN bool_or(type = :cloud) THEN 'some' ELSE '' END AS points
    FROM city_object WHERE city_code = :city AND tile_level IS NOT NULL
    GROUP BY tile_level, tile_x, tile_y""")
# the same of a design scheme's view of its city (tiles.scenario)
SCENARIO_STATS = text(
    _STATS.text.replace("FROM city_object WHERE city_code = :city AND", f"FROM ({OBJECTS}) o WHERE")
)


def tile_stats(rows: Any) -> list[TileStats]:
    """The statistics of the tiles of `_STATS` rows."""
    return [
        TileStats(
            (r.tile_level, r.tile_x, r.tile_y),
            r.n,
            r.west,
            r.south,
            r.east,
            r.north,
            r.low,
            r.high,
            r.max_size or 0.0,
            r.points,
        )
        for r in rows
    ]


# the city's data generation (as tiles.schema.generation) and what is kept of the tile, in one
# round trip
_LOOKUP = text("""
    SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM dataset
            WHERE city_code = :c AND status = 'ready') AS ids,
           t.etag, t.made_with
    FROM (SELECT 1) AS one
    LEFT JOIN tile_cache t ON t.city_code = :c AND t.tile_level = :l AND t.tile_x = :x
         AND t.tile_y = :y AND t.format = :f AND t.variant = :v""")
_CONTENT = text("""
    SELECT content, etag FROM tile_cache
    WHERE city_code = :c AND tile_level = :l AND tile_x = :x AND tile_y = :y AND format = :f
      AND variant = :v AND made_with = :m""")
_UNCHANGING = text("SELECT 1 FROM city WHERE code = :c FOR SHARE SKIP LOCKED")
# a kept tile is a cache: losing the last ones in a crash costs a remake, so its commit does not
# wait for the WAL to reach the disk (one flush per tile was most of a seeding's time)
_LAZY_COMMIT = text("SET LOCAL synchronous_commit = off")
# the tiles of a city kept for its data as it is (seeding skips them)
_KEPT = text(
    "SELECT tile_level, tile_x, tile_y FROM tile_cache"
    " WHERE city_code = :c AND format = :f AND variant = :v AND made_with = :m"
)
# tiles read in one query and kept in one transaction while seeding: each batch costs a few
# round trips and two transactions of its own, and the million-building city seeded in 21 s
# with 16 against 26.6 s with 8 (medians of alternating runs; 24 and 32 gained no more).
# `cim tiles seed` leaves over-full tiles to their parts, so each content it makes here is
# within the content budget (2 MB), and a batch's rows within some tens of MB
SEED_BATCH = 16
_KEEP = text(
    "INSERT INTO tile_cache (city_code, tile_level, tile_x, tile_y, format, variant, made_with,"
    " content, etag) VALUES (:c, :l, :x, :y, :f, :v, :m, :content, :etag)"
    " ON CONFLICT (city_code, tile_level, tile_x, tile_y, format, variant) DO UPDATE"
    " SET made_with = EXCLUDED.made_with, content = EXCLUDED.content, etag = EXCLUDED.etag,"
    " made_at = now()"
)


# kept contents of one format and variant made for other data or code than `:m`: no process
# serves them again (parts of over-full tiles, tiles.parts, which the trigger cannot name)
_FORGET_STALE = text(
    "DELETE FROM tile_cache WHERE city_code = :c AND format = :f AND variant = :v"
    " AND made_with <> :m"
)


def keep_contents(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Keep contents in `tile_cache` (rows of c, l, x, y, f, v, m, content, etag), in place of
    those kept before at the same key, format and variant: for modules that make contents of
    their own (tiles.parts), so that this module alone writes the table."""
    if rows:
        conn.execute(_KEEP, rows)


def forget_stale(conn: Connection, city: str, fmt: str, variant: str, stamp: str) -> int:
    """Forget a city's kept contents of this format and variant whose `made_with` is not
    `stamp` (made for older data or code); returns how many."""
    params = {"c": city, "f": fmt, "v": variant, "m": stamp}
    return int(conn.execute(_FORGET_STALE, params).rowcount or 0)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown tile format {fmt!r} (known: {', '.join(FORMATS)})")


class TileMemory:
    """Tile contents kept in this process, least recently used out first, within a byte budget.

    The database stays the authority: a kept tile is served only while its ETag in
    `tile_cache` is unchanged, so another process's ingest invalidates it here too.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._items: OrderedDict[tuple[str, Key, str], tuple[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, Key, str], etag: str) -> bytes | None:
        """The kept content when its ETag still matches."""
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != etag:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[str, Key, str], etag: str, content: bytes) -> None:
        """Keep a content, dropping the least recently used ones beyond the budget."""
        if len(content) > self.max_bytes // 4:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.used -= len(old[1])
            self._items[key] = (etag, content)
            self.used += len(content)
            while self.used > self.max_bytes and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self.used -= len(dropped)


class TileService:
    """A city model's 3D Tiles from one database: made once per process (by the app, or by a
    command), it holds the tile memory and counts where the contents came from."""

    def __init__(
        self, engine: Engine, settings: TileSettings | None = None, reads: Engine | None = None
    ) -> None:
        self.engine = engine
        self.reads = reads or engine  # lookups may go to hot standbys; tiles are made on engine
        self.settings = settings or TileSettings()
        self.memory = TileMemory(self.settings.memory_mb * 1024 * 1024)
        self.schemas = CitySchemas(engine)
        self.variants = {fmt: variant(self.settings, fmt) for fmt in FORMATS}
        self.results: Counter[str] = Counter()
        self._counting = threading.Lock()
        # LISTENs on the primary (engine): a standby does not relay notifications
        self.generations = GenerationWatch(engine)
        weakref.finalize(self, self.generations.close)  # no listener outlives its service
        # what this process learnt under a city's token: tiles' ETags, the city's content
        # version, its tileset JSON with versioned URIs
        self._known: dict[tuple[str, Key, str], tuple[Token, str]] = {}
        self._versions: dict[str, tuple[Token, str]] = {}
        self._tilesets: dict[tuple[str, str], tuple[Token, bytes]] = {}

    def warm(self, city: str, key: Key, fmt: str, packed: bool) -> tuple[bytes, str] | None:
        """A tile's content (gzip-compressed when `packed`) and ETag from this process's memory,
        when they are known to be current without asking the database; else None."""
        token = self.generations.token(city)
        known = self._known.get((city, key, fmt))
        if token is None or known is None or known[0] != token:
            return None
        content = self.memory.get((city, key, fmt + ".gz" if packed else fmt), known[1])
        if content is None:
            return None
        self._counted("memory")
        return content, known[1]

    def version(self, city: str) -> str | None:
        """The city's content version (the `?v=` of its content URIs), when known current."""
        token = self.generations.token(city)
        version = self._versions.get(city)
        return version[1] if token is not None and version and version[0] == token else None

    def tileset_json(self, city: str, fmt: str = "glb") -> bytes:
        """The tileset JSON as served over HTTP: content URIs carry the city's content version
        (`?v=`); made once per generation of the city's data while the process listens.

        Raises:
            NotFound: no such city, or nothing in it to draw.
        """
        token = self.generations.token(city)
        kept = self._tilesets.get((city, fmt))
        if token is not None and kept is not None and kept[0] == token:
            return kept[1]
        with self.engine.connect() as conn:
            ids = generation(conn, city)
        doc = self.tileset(city, fmt)
        version = self._version_of(city, ids, fmt)
        _version_uris(doc["root"], version)
        body = orjson.dumps(doc)
        if token is not None:
            self._tilesets[(city, fmt)] = (token, body)
            self._versions[city] = (token, version)
        return body

    def _version_of(self, city: str, ids: Generation, fmt: str) -> str:
        """A digest of what a city's contents are made of: its datasets, the code and the
        property schema (made_with), and the settings (variant)."""
        mine = made_with(self.schemas.get(city, ids))
        made_of = orjson.dumps([list(ids), mine, self.variants[fmt]])
        return hashlib.sha256(made_of).hexdigest()[:16]

    def _counted(self, result: str) -> None:
        with self._counting:
            self.results[result] += 1

    def tileset(self, city: str, fmt: str = "glb") -> dict[str, Any]:
        """The tileset JSON of a city.

        Raises:
            NotFound: no such city, or nothing in it to draw.
        """
        _check_format(fmt)
        with self.reads.connect() as conn:
            require_city(conn, city)
            rows = conn.execute(_STATS, {"city": city, "cloud": CLOUD_TYPE}).all()
        doc = build_tileset(tile_stats(rows), FORMATS[fmt], fmt)
        if doc is None:
            raise NotFound(f"city {city!r} has no objects to show in 3D")
        return doc

    def tile(self, city: str, key: Key, fmt: str = "glb") -> tuple[bytes, str]:
        """A tile's content and its ETag: from this process's memory, the database cache, or
        made now and cached.

        Raises:
            NotFound: the tile holds no object, or the key is outside the quadtree.
            InvalidInput: the format is unknown.
        """
        _check_format(fmt)
        level, x, y = key
        if not (0 <= level <= MAX_LEVEL and 0 <= x < (1 << level) and 0 <= y < (1 << level)):
            raise NotFound(f"no tile {level}/{x}/{y}: the quadtree has no such cell")
        params = {"c": city, "l": level, "x": x, "y": y, "f": fmt, "v": self.variants[fmt]}
        token = self.generations.token(city)  # before the database is read: a change after
        with self.reads.connect() as conn:  # it makes what is learnt now stale
            found = conn.execute(_LOOKUP, params).one()
        ids: Generation = tuple(found.ids)
        mine = made_with(self.schemas.get(city, ids))
        content: bytes | None = None
        etag = ""
        if found.etag is not None and found.made_with == mine:
            content, etag = self.memory.get((city, key, fmt), found.etag), found.etag
            if content is not None:
                self._counted("memory")
            else:
                with self.reads.connect() as conn:
                    row = conn.execute(_CONTENT, {**params, "m": mine}).first()
                if row is not None:
                    content, etag = bytes(row[0]), row[1]
                    self.memory.put((city, key, fmt), etag, content)
                    self._counted("database")
        if content is None:
            content, etag = self._make(city, key, fmt, ids, params)
            self.memory.put((city, key, fmt), etag, content)
            self._counted("made")
        if token is not None:
            self._known[(city, key, fmt)] = (token, etag)
            if self._versions.get(city, (None, ""))[0] != token:
                self._versions[city] = (token, self._version_of(city, ids, fmt))
        return content, etag

    def _make(
        self, city: str, key: Key, fmt: str, ids: Generation, params: dict[str, Any]
    ) -> tuple[bytes, str]:
        """Make a tile with the schema of the city's data as it is, and keep it when no dataset
        of the city is changing.

        Raises:
            NotFound: the tile holds no object.
            Conflict: the city's data kept changing while the tile was made.
        """
        for _ in range(3):
            schema = self.schemas.get(city, ids)  # before the transaction: one connection each
            with self.engine.begin() as conn:
                conn.execute(_LAZY_COMMIT)
                # kept only if no dataset of the city is changing now (migration 0007's trigger
                # holds the city's row until the change commits, and then forgets what we keep)
                keep = conn.execute(_UNCHANGING, {"c": city}).first() is not None
                now = generation(conn, city)
                content = self._content(conn, city, key, fmt, schema) if now == ids else None
                if content is not None:
                    etag = hashlib.sha256(content).hexdigest()[:32]
                    if keep:
                        row = {**params, "m": made_with(schema), "content": content, "etag": etag}
                        conn.execute(_KEEP, row)
                    return content, etag
                now = generation(conn, city)
            ids = now  # the city's data changed since its schema was decided: decide again
        raise Conflict(f"the data of city {city!r} is changing: ask for the tile again")

    def _content(
        self, conn: Connection, city: str, key: Key, fmt: str, schema: PropertySchema
    ) -> bytes | None:
        """A tile's content, or None when an object holds a value the schema has no room
        for (a change committed between reading the generation and the objects).

        Raises:
            NotFound: the tile holds no object.
        """
        try:
            content = tile_content(conn, city, *key, schema, fmt, self.settings.meshopt)
        except SchemaMismatch:
            return None
        if content is None:
            raise NotFound(f"tile {key[0]}/{key[1]}/{key[2]} of city {city!r} is empty")
        return content

    def make_many(
        self,
        city: str,
        keys: list[Key],
        fmt: str = "glb",
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Make and keep those of `keys` that are not kept for the city's data as it is, a
        batch at a time (seeding): while a batch's contents are made, a thread reads the next
        batch's rows, so that PostgreSQL and this process work at once. A batch during which the
        city's data changes is made one tile at a time, as requests would. `progress` hears
        (keys done, keys) after each batch. Returns how many keys were given."""
        _check_format(fmt)
        with self.engine.connect() as conn:
            ids = generation(conn, city)
            schema = self.schemas.get(city, ids)
            mine = made_with(schema)
            given = {"c": city, "f": fmt, "v": self.variants[fmt], "m": mine}
            kept = {tuple(r) for r in conn.execute(_KEPT, given)}
        todo = [key for key in keys if key not in kept]
        runs = [todo[start : start + SEED_BATCH] for start in range(0, len(todo), SEED_BATCH)]
        with (
            fewer_collections(),  # rows and arrays by the million, few cycles (cim.bulk)
            ThreadPoolExecutor(1, thread_name_prefix="cim-seed-read") as reader,
        ):
            ahead = reader.submit(self._read_batch, city, runs[0], ids) if runs else None
            for n, batch in enumerate(runs):
                assert ahead is not None
                rows = ahead.result()
                if n + 1 < len(runs):
                    ahead = reader.submit(self._read_batch, city, runs[n + 1], ids)
                if rows is None or not self._keep_batch(city, rows, fmt, ids, schema):
                    for key in batch:
                        try:
                            self.tile(city, key, fmt)
                        except NotFound:
                            pass  # emptied meanwhile
                if progress:
                    progress(len(keys) - len(todo) + n * SEED_BATCH + len(batch), len(keys))
        return len(keys)

    def _read_batch(self, city: str, keys: list[Key], ids: Generation) -> list[Any] | None:
        """The object rows of a batch of tiles, read while no dataset of the city is changing
        and its data is still `ids`; else None."""
        with self.engine.begin() as conn:
            if conn.execute(_UNCHANGING, {"c": city}).first() is None:
                return None
            if generation(conn, city) != ids:
                return None
            return tile_rows(conn, city, keys)

    def _keep_batch(
        self, city: str, rows: list[Any], fmt: str, ids: Generation, schema: PropertySchema
    ) -> bool:
        """Make and keep the contents of a batch's rows in one transaction; False when the
        city's data is changing or changed since `ids` (nothing kept then). The rows were read
        under `ids` with no change under way, and the data is `ids` again here with none under
        way: a change in between would have made another generation."""
        with self.engine.begin() as conn:
            conn.execute(_LAZY_COMMIT)
            if conn.execute(_UNCHANGING, {"c": city}).first() is None:
                return False
            if generation(conn, city) != ids:
                return False
            meshopt = self.settings.meshopt
            try:
                made = list(rows_contents(conn, city, rows, schema, fmt, meshopt))
            except SchemaMismatch:
                return False
            mine, fixed = made_with(schema), {"c": city, "f": fmt, "v": self.variants[fmt]}
            keep_contents(
                conn,
                [
                    {
                        **fixed,
                        "l": key[0],
                        "x": key[1],
                        "y": key[2],
                        "m": mine,
                        "content": content,
                        "etag": hashlib.sha256(content).hexdigest()[:32],
                    }
                    for key, content in made
                ],
            )
        with self._counting:
            self.results["made"] += len(made)
        return True

    def tile_gzip(self, city: str, key: Key, fmt: str = "glb") -> tuple[bytes, str]:
        """Like `tile`, gzip-compressed once per content and kept in memory (for HTTP clients
        that accept gzip: compressing on every request would cost more than the request)."""
        content, etag = self.tile(city, key, fmt)
        packed = self.memory.get((city, key, fmt + ".gz"), etag)
        if packed is None:
            packed = gzip.compress(content, compresslevel=6, mtime=0)
            self.memory.put((city, key, fmt + ".gz"), etag, packed)
        return packed, etag

    def seed(
        self,
        city: str,
        progress: Callable[[int, int], None] | None = None,
        fmt: str = "glb",
        workers: int | None = None,
        only: set[Key] | None = None,
    ) -> int:
        """Make every tile of a city ahead of requests (or the tiles in `only`: tiles with
        objects, taken as they are, which spares reading the tileset of the whole city), with
        one process per CPU by default; returns how many tiles were asked for."""
        keys = content_keys(self.tileset(city, fmt)) if only is None else sorted(only)
        workers = workers or os.cpu_count() or 1
        if workers == 1 or len(keys) < 8:
            return self.make_many(city, keys, fmt, progress)
        shares = [(make_share, args) for args in self.seed_shares(city, keys, workers, fmt)]
        run_shares(self.engine, workers, shares, 0, len(keys), progress)
        return len(keys)

    def seed_shares(
        self, city: str, keys: list[Key], workers: int, fmt: str = "glb"
    ) -> list[tuple[str, TileSettings, str, list[Key], str]]:
        """The arguments of `make_share` for `workers` seeding processes making `keys`: four
        shares each, interleaved, so that every process gets some of the big tiles first. The
        city's property schema is measured here, once, before the workers start."""
        with self.engine.connect() as conn:
            self.schemas.get(city, generation(conn, city))
        url = self.engine.url.render_as_string(hide_password=False)
        return [(url, self.settings, city, keys[i :: workers * 4], fmt) for i in range(workers * 4)]

    def export(
        self,
        city: str,
        out: Path,
        progress: Callable[[int, int], None] | None = None,
        fmt: str = "glb",
    ) -> int:
        """Write a city's tileset as static files (tileset.json and tiles/...) under `out`."""
        doc = self.tileset(city, fmt)
        return write_static(out, doc, lambda key: self.tile(city, key, fmt)[0], progress)


def write_static(
    out: Path,
    doc: dict[str, Any],
    content_of: Callable[[Key], bytes],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write a tileset as static files under `out`: every content at its URI, as `content_of`
    gives it, then tileset.json; returns how many contents."""
    uris = content_uris(doc)
    out.mkdir(parents=True, exist_ok=True)
    for n, (key, uri) in enumerate(uris.items(), 1):
        path = out / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content_of(key))
        if progress:
            progress(n, len(uris))
    (out / "tileset.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return len(uris)


def run_shares(
    engine: Engine,
    workers: int,
    shares: list[tuple[Callable[..., int], tuple[Any, ...]]],
    done: int,
    total: int,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Run seeding shares (a function and its arguments, each returning how many contents it
    made) in a pool of `workers` processes, in the order given as far as the pool allows;
    `progress` hears (done, total), from `done` on, as each share ends. The processes are
    forked where the system can (no re-import of everything), so `engine`'s pooled connections
    are closed first: none may cross a fork."""
    engine.dispose()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    if progress:
        progress(done, total)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for future in as_completed([pool.submit(run, *args) for run, args in shares]):
            done += future.result()
            if progress:
                progress(done, total)


_WORKER_ENGINES: dict[str, Engine] = {}


def worker_engine(url: str) -> Engine:
    """A seeding process's engine for `url`, made on its first share and kept for the next
    ones. A new PostgreSQL backend maps each shared buffer it touches with a page fault of its
    own, and a seeding reads gigabytes through them: the same backends for every share of a
    process spared a third of those faults."""
    from cim.db.engine import make_engine

    engine = _WORKER_ENGINES.get(url)
    if engine is None:
        engine = _WORKER_ENGINES[url] = make_engine(url)
        multiprocessing.util.Finalize(engine, engine.dispose, exitpriority=10)  # at its exit
    return engine


def make_share(url: str, settings: TileSettings, city: str, keys: list[Key], fmt: str) -> int:
    """A seeding process's share (`TileService.seed_shares`); how many keys it had."""
    TileService(worker_engine(url), settings).make_many(city, keys, fmt)
    return len(keys)


def _version_uris(node: dict[str, Any], version: str) -> None:
    """Append `?v=version` to every content URI below `node`."""
    if "content" in node:
        node["content"]["uri"] += f"?v={version}"
    for child in node.get("children", []):
        _version_uris(child, version)


def content_keys(tileset_doc: dict[str, Any]) -> list[Key]:
    """The keys of every tile with content, parents first."""
    return list(content_uris(tileset_doc))


def content_uris(tileset_doc: dict[str, Any]) -> dict[Key, str]:
    """The content URI of every tile with content, by key, parents first."""
    uris: dict[Key, str] = {}

    def walk(node: dict[str, Any]) -> None:
        if "content" in node:
            uri = node["content"]["uri"]
            level, x, y = uri.rsplit(".", 1)[0].split("/")[1:]
            uris[(int(level), int(x), int(y))] = uri
        for child in node.get("children", []):
            walk(child)

    walk(tileset_doc["root"])
    return uris
