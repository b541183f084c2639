"""A city's 3D Tiles as one of its design schemes (方案) has it: the baseline's tiles where the
scheme changes nothing, and where it does, contents of the scenario's view (cim.db.scenarios:
the baseline's objects less those the scheme replaces, and the scheme's objects).

The grid is global (cim.tiling), so the scheme's objects fall in the cells the baseline's would:
a scenario's tileset is the explicit tree of the view's tiles, and it names the contents of the
tiles the scheme touches (a replaced object or a scheme's object in them) with `?scenario=`. Any
other tile of the view is the baseline's, byte for byte, and is served as such, also when a
client carries the tileset's query on to every content (CesiumJS does). A touched tile's content
follows the property schema of the city and its scheme together, and is made on request and
kept in this process's memory while neither city's data changes (a scheme is reviewed, not
streamed by the million).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import Connection, text

from cim.db.scenarios import scheme_city
from cim.errors import Conflict, InvalidInput, NotFound
from tiles.content import CLOUD_TYPE, scenario_tile_content
from tiles.properties import PropertySchema, SchemaMismatch, decide
from tiles.schema import Generation, city_stats, generation
from tiles.service import FORMATS, SCENARIO_STATS, TileService, tile_stats
from tiles.tileset import Key, build_tileset

# the tiles a scheme touches: those of its objects, and those of the baseline's it replaces
_TOUCHED = text("""
    SELECT tile_level, tile_x, tile_y FROM city_object
    WHERE city_code = :scheme AND tile_level IS NOT NULL
    UNION
    SELECT o.tile_level, o.tile_x, o.tile_y
    FROM city_object s JOIN city_object o ON o.city_code = :city AND o.source_id = s.source_id
    WHERE s.city_code = :scheme AND o.tile_level IS NOT NULL""")
_TOUCHES = text("""
    SELECT EXISTS (SELECT 1 FROM city_object WHERE city_code = :scheme
                   AND tile_level = :l AND tile_x = :x AND tile_y = :y)
        OR EXISTS (SELECT 1 FROM city_object s
                   JOIN city_object o ON o.city_code = :city AND o.source_id = s.source_id
                   WHERE s.city_code = :scheme
                     AND o.tile_level = :l AND o.tile_x = :x AND o.tile_y = :y)""")
KEPT = 256  # touched contents kept in memory, the most recently used


class ScenarioTiles:
    """The tilesets and touched contents of design schemes, for one process, beside the
    city's own tiles (`service`)."""

    def __init__(self, service: TileService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._schemas: dict[tuple[str, Generation, str, Generation], PropertySchema] = {}
        self._contents: OrderedDict[tuple[Any, ...], tuple[bytes, str]] = OrderedDict()

    def scheme(self, city: str, scenario: str) -> str:
        """The city a scenario of `city` is held as.

        Raises:
            NotFound: no such city, or no such scenario of it.
        """
        with self.service.reads.connect() as conn:
            return str(scheme_city(conn, city, scenario))

    def tileset(self, city: str, scenario: str, fmt: str = "glb") -> bytes:
        """The explicit tileset JSON of the scenario's view of the city.

        Raises:
            NotFound: no such city or scenario, or nothing to draw.
            InvalidInput: an unknown format.
        """
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown tile format {fmt!r}")
        with self.service.reads.connect() as conn:
            scheme = str(scheme_city(conn, city, scenario))
            params = {"city": city, "scheme": scheme, "cloud": CLOUD_TYPE}
            rows = conn.execute(SCENARIO_STATS, params).all()
            touched = {tuple(r) for r in conn.execute(_TOUCHED, params).all()}
        doc = build_tileset(tile_stats(rows), FORMATS[fmt], fmt)
        if doc is None:
            raise NotFound(f"scenario {scenario!r} of city {city!r} has no objects to show in 3D")
        doc["asset"]["tilesetVersion"] = f"scenario {scenario}"
        _mark(doc["root"], touched, "scenario=" + quote(scenario, safe=""))
        return orjson.dumps(doc)

    def tile(self, city: str, scenario: str, key: Key, fmt: str = "glb") -> tuple[bytes, str]:
        """A tile of the scenario's view and its ETag: the baseline's own where the scheme
        touches nothing, else made for the view (and kept while neither city changes).

        Raises:
            NotFound: no such city, scenario or tile.
            Conflict: the data kept changing while the tile was made.
        """
        level, x, y = key
        with self.service.reads.connect() as conn:
            scheme = str(scheme_city(conn, city, scenario))
            touches = conn.execute(
                _TOUCHES, {"city": city, "scheme": scheme, "l": level, "x": x, "y": y}
            ).scalar()
        if not touches:
            return self.service.tile(city, key, fmt)
        for _ in range(3):
            with self.service.engine.begin() as conn:
                ids, scheme_ids = generation(conn, city), generation(conn, scheme)
                found = self._kept((city, scheme, key, fmt, ids, scheme_ids))
                if found is not None:
                    return found
                schema = self._schema(city, ids, scheme, scheme_ids)
                content = self._content(conn, city, scheme, key, fmt, schema)
                if content is None:
                    continue  # a change committed under the schema: decide it again
                etag = hashlib.sha256(content).hexdigest()[:32]
                self._keep((city, scheme, key, fmt, ids, scheme_ids), content, etag)
                return content, etag
        raise Conflict(f"the data of city {city!r} is changing: ask for the tile again")

    def _content(
        self,
        conn: Connection,
        city: str,
        scheme: str,
        key: Key,
        fmt: str,
        schema: PropertySchema,
    ) -> bytes | None:
        try:
            content = scenario_tile_content(
                conn, city, scheme, key, schema, fmt, self.service.settings.meshopt
            )
        except SchemaMismatch:
            with self._lock:
                self._schemas.clear()
            return None
        if content is None:
            level, x, y = key
            raise NotFound(f"tile {level}/{x}/{y} of scheme {scheme!r} is empty")
        return content

    def _schema(
        self, city: str, ids: Generation, scheme: str, scheme_ids: Generation
    ) -> PropertySchema:
        """The property schema of the city's and the scheme's datasets together."""
        key = (city, ids, scheme, scheme_ids)
        with self._lock:
            known = self._schemas.get(key)
        if known is not None:
            return known
        engine = self.service.engine
        schema = decide(city_stats(engine, city, ids) + city_stats(engine, scheme, scheme_ids))
        with self._lock:
            if len(self._schemas) >= KEPT:
                self._schemas.clear()
            self._schemas[key] = schema
        return schema

    def _kept(self, key: tuple[Any, ...]) -> tuple[bytes, str] | None:
        with self._lock:
            found = self._contents.get(key)
            if found is not None:
                self._contents.move_to_end(key)
            return found

    def _keep(self, key: tuple[Any, ...], content: bytes, etag: str) -> None:
        with self._lock:
            self._contents[key] = (content, etag)
            while len(self._contents) > KEPT:
                self._contents.popitem(last=False)


def _mark(node: dict[str, Any], touched: set[Any], query: str) -> None:
    """Give the contents of the touched tiles the scenario's query (`tiles/L/X/Y.ext`)."""
    content = node.get("content")
    if content is not None:
        _, level, x, name = content["uri"].split("/")
        if (int(level), int(x), int(name.partition(".")[0])) in touched:
            content["uri"] += f"?{query}"
    for child in node.get("children", ()):
        _mark(child, touched, query)
