"""The properties of a city's features, as GIS clients need them to make typed columns: their
names (CIM's own, then each attribute at the top level), the JSON type each one's values have in
a city, and the filters and schemas made from those types.

An attribute keeps its name unless CIM needs it (`cim.attributes`, the rule the tiles follow
too): an attribute `type` is `attribute_type`; a tree's `height` stays `height`.

A city's types are read from its objects (every value of every attribute, with the geometry each
object shows) and kept in this process until the city's data changes: a dataset added, replaced,
deleted or finished. A filter then costs one look-up of the city's datasets, never a scan (the
look-up that also says whether the city exists).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, text

from api.paging import NOW
from cim.attributes import OWN_PROPERTIES, published_name
from cim.errors import InvalidInput, NotFound

# CIM's own properties of every feature, in the order they come, with their JSON Schemas
OWN: dict[str, dict[str, Any]] = {
    "type": {"type": "string", "title": "City object type", "x-ogc-role": "type"},
    "dataset": {"type": "string", "title": "Dataset (the file it was ingested from)"},
    "lods": {"type": "array", "items": {"type": "string"}, "title": "Levels of detail"},
    "parents": {"type": "array", "items": {"type": "string"}, "title": "Parent object ids"},
    "children": {"type": "array", "items": {"type": "string"}, "title": "Child object ids"},
    "height_min": {
        "type": "number",
        "title": "Lowest point",
        "description": "ellipsoidal height (WGS 84) of the object's lowest point, metres",
    },
    "height_max": {
        "type": "number",
        "title": "Highest point",
        "description": "ellipsoidal height (WGS 84) of the object's highest point, metres",
    },
}
assert set(OWN) <= OWN_PROPERTIES  # noqa: S101 - the naming rule (cim.attributes) knows them
INT32 = (-(2**31), 2**31 - 1)
JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# GeoJSON geometry types by PostGIS GeometryType() (surfaces and TINs are written as MultiPolygon)
_GEOJSON = {
    "POINT": "Point",
    "MULTIPOINT": "MultiPoint",
    "LINESTRING": "LineString",
    "MULTILINESTRING": "MultiLineString",
    "POLYGON": "Polygon",
    "MULTIPOLYGON": "MultiPolygon",
    "POLYHEDRALSURFACE": "MultiPolygon",
    "TIN": "MultiPolygon",
    "TRIANGLE": "Polygon",
    "GEOMETRYCOLLECTION": "GeometryCollection",
}
_FORMATS = {
    frozenset({"Point"}): "geometry-point",
    frozenset({"MultiPoint"}): "geometry-multipoint",
    frozenset({"Point", "MultiPoint"}): "geometry-point-or-multipoint",
    frozenset({"LineString"}): "geometry-linestring",
    frozenset({"MultiLineString"}): "geometry-multilinestring",
    frozenset({"LineString", "MultiLineString"}): "geometry-linestring-or-multilinestring",
    frozenset({"Polygon"}): "geometry-polygon",
    frozenset({"MultiPolygon"}): "geometry-multipolygon",
    frozenset({"Polygon", "MultiPolygon"}): "geometry-polygon-or-multipolygon",
    frozenset({"GeometryCollection"}): "geometry-geometrycollection",
}


@dataclass(frozen=True)
class Values:
    """What the values of one attribute are among some objects: their JSON kinds ("integer"
    for a number written without fraction or exponent, "number", "string", "boolean", "object",
    "array"; null is left out), and the range of the integers."""

    kinds: frozenset[str]
    low: int | None = None
    high: int | None = None

    def merged(self, other: Values) -> Values:
        lows = [v for v in (self.low, other.low) if v is not None]
        highs = [v for v in (self.high, other.high) if v is not None]
        return Values(self.kinds | other.kinds, min(lows, default=None), max(highs, default=None))

    @property
    def json_type(self) -> str | list[str]:
        """The JSON Schema type of the values: one type, or the list of them when mixed
        (integers among other numbers are numbers)."""
        kinds = set(self.kinds)
        if "number" in kinds:
            kinds.discard("integer")
        if not kinds:
            return "null"
        return kinds.pop() if len(kinds) == 1 else sorted(kinds)

    def match(self, name: str, given: str) -> list[str]:
        """The JSON values (as text) that a filter `name=given` matches: the given text read as
        each type the property has (a number as JSON writes one), so 23 finds 23 and 23.0 of a
        number, and "007" only "007" of a string.

        Raises:
            InvalidInput: the text cannot be a value of any of the property's types.
        """
        kinds = self.kinds or frozenset({"string"})
        found: list[str] = []
        if kinds & {"integer", "number"} and JSON_NUMBER.fullmatch(given.strip()):
            found.append(given.strip())
        if "boolean" in kinds and given.strip().lower() in ("true", "false"):
            found.append(given.strip().lower())
        if "string" in kinds:
            found.append(orjson.dumps(given).decode())
        if kinds & {"object", "array"}:
            try:
                parsed = orjson.loads(given)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict | list):
                found.append(orjson.dumps(parsed).decode())
        if not found:
            expected = self.json_type
            what = expected if isinstance(expected, str) else " or ".join(expected)
            raise InvalidInput(f"filter {name}={given!r}: {name} is {_article(what)} {what}")
        return found


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@dataclass(frozen=True)
class CityProperties:
    """What a city's features hold, by object type: each attribute's values, and the GeoJSON
    geometry types of the geometries the features show ("" for none)."""

    attributes: dict[str, dict[str, Values]]
    geometries: dict[str, frozenset[str]]

    def types(self) -> list[str]:
        """The city's object types."""
        return sorted(set(self.attributes) | set(self.geometries))

    def values(self, types: Iterable[str] | None = None) -> dict[str, Values]:
        """Each attribute's values over the objects of `types` (all when None), by the name
        it is published under."""
        chosen = (
            self.attributes if types is None else {t: self.attributes.get(t, {}) for t in types}
        )
        out: dict[str, Values] = {}
        for per_type in chosen.values():
            for key, values in per_type.items():
                name = published_name(key)
                out[name] = out[name].merged(values) if name in out else values
        return dict(sorted(out.items()))

    def geometry_types(self, types: Iterable[str] | None = None) -> frozenset[str]:
        """The GeoJSON types of the geometries the objects of `types` (all when None) show."""
        chosen = self.geometries if types is None else {t: self.geometries.get(t) for t in types}
        return frozenset[str]().union(*(g for g in chosen.values() if g)) - {""}

    def geometry_format(self, types: Iterable[str] | None = None) -> str:
        """The Part 5 format of the geometry the objects of `types` (all when None) show."""
        return _FORMATS.get(self.geometry_types(types), "geometry-any")


_GENERATION = text(f"SELECT {NOW}")  # noqa: S608 - fixed SQL
_ATTRIBUTES = text("""
    SELECT o.type, a.key,
           CASE WHEN jsonb_typeof(a.value) <> 'number' THEN jsonb_typeof(a.value)
                WHEN a.value::text ~ '[.eE]' THEN 'number' ELSE 'integer' END AS kind,
           min(CASE WHEN jsonb_typeof(a.value) = 'number' THEN a.value::numeric END),
           max(CASE WHEN jsonb_typeof(a.value) = 'number' THEN a.value::numeric END)
    FROM city_object o CROSS JOIN LATERAL jsonb_each(o.attributes) a
    WHERE o.city_code = :c
    GROUP BY 1, 2, 3""")
_GEOMETRIES = text("""
    SELECT o.type, coalesce(GeometryType(best.geom), '') FROM city_object o
    LEFT JOIN LATERAL (
      SELECT g.geom FROM object_geometry g
      WHERE g.city_code = o.city_code AND g.object_id = o.id
      ORDER BY g.lod DESC NULLS LAST, g.idx LIMIT 1
    ) best ON true
    WHERE o.city_code = :c
    GROUP BY 1, 2""")


def read_city(engine: Engine, city: str) -> CityProperties:
    """Read what a city's features hold from its objects (a scan of the city: see the cache)."""
    attributes: dict[str, dict[str, Values]] = {}
    geometries: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for otype, key, kind, low, high in conn.execute(_ATTRIBUTES, {"c": city}):
            per_type = attributes.setdefault(otype, {})
            if kind == "null":
                values = Values(frozenset())
            elif kind == "integer":
                values = Values(frozenset({kind}), int(low), int(high))
            else:
                values = Values(frozenset({kind}))
            per_type[key] = per_type[key].merged(values) if key in per_type else values
        for otype, gtype in conn.execute(_GEOMETRIES, {"c": city}):
            geometries.setdefault(otype, set()).add(_GEOJSON.get(gtype.rstrip("M"), gtype))
    return CityProperties(attributes, {t: frozenset(g) for t, g in geometries.items()})


class PropertyCache:
    """Each city's properties, read once per generation of its data (the ids and states of its
    datasets, which every ingest, replacement, deletion and finish changes), for the last
    `size` cities asked about."""

    def __init__(self, engine: Engine, size: int = 64) -> None:
        self.engine = engine
        self.size = size
        self._kept: OrderedDict[str, tuple[str, CityProperties]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, city: str) -> CityProperties:
        """The city's properties as its data is now.

        Raises:
            NotFound: no such city (checked in the same statement as the generation).
        """
        with self.engine.connect() as conn:
            now = conn.execute(_GENERATION, {"city": city}).one()
        if not now.city_exists:
            raise NotFound(f"no city {city!r}")
        generation = now.generation
        with self._lock:
            kept = self._kept.get(city)
            if kept is not None and kept[0] == generation:
                self._kept.move_to_end(city)
                return kept[1]
        found = read_city(self.engine, city)
        with self._lock:
            self._kept[city] = (generation, found)
            self._kept.move_to_end(city)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return found


def attribute_schema(values: Values) -> dict[str, Any]:
    """The JSON Schema of one attribute's values (integers beyond 32 bits say so by format)."""
    schema: dict[str, Any] = {"type": values.json_type}
    if values.json_type == "integer" and not _int32(values):
        schema["format"] = "int64"
    return schema


def _int32(values: Values) -> bool:
    low, high = values.low or 0, values.high or 0
    return INT32[0] <= low and high <= INT32[1]


def feature_properties(
    found: CityProperties, types: list[str] | None, for_gdal: bool = False
) -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the properties of the features of `types` (all when None): CIM's own,
    then the attributes by name. `for_gdal` writes them so that GDAL's OAPIF driver makes
    columns that hold them: an integer beyond 32 bits as a number (GDAL would make a 32-bit
    column of an integer), an array without its items' type (a text column: GeoPackage has no
    list columns)."""
    out = {name: dict(schema) for name, schema in OWN.items()}
    out["type"]["enum"] = sorted(types) if types is not None else found.types()
    for name, values in found.values(types).items():
        schema = attribute_schema(values)
        if for_gdal and schema.pop("format", None) == "int64":
            schema["type"] = "number"
        out[name] = schema
    if for_gdal:
        for schema in out.values():
            schema.pop("items", None)
            schema.pop("x-ogc-role", None)
    return out


SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def queryables_doc(found: CityProperties, url: str, title: str) -> dict[str, Any]:
    """The queryables (OGC API Features Part 3): the object type and every attribute, typed."""
    props = feature_properties(found, None)
    queryable = {"type": props["type"]} | {n: props[n] for n in found.values()}
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": url,
        "type": "object",
        "title": title,
        "properties": queryable,
        "additionalProperties": False,
    }


def schema_doc(found: CityProperties, types: list[str] | None, url: str, title: str) -> dict:
    """The schema of the features (OGC API Features Part 5): the id, the geometry with its
    format, CIM's own properties and every attribute, typed and in order."""
    props: dict[str, Any] = {
        "id": {"type": "string", "title": "Object id", "x-ogc-role": "id", "readOnly": True},
        "geometry": {
            "title": "The geometry of the object's highest level of detail",
            "x-ogc-role": "primary-geometry",
            "format": found.geometry_format(types),
        },
        **feature_properties(found, types),
    }
    for seq, schema in enumerate(props.values(), start=1):
        schema["x-ogc-propertySeq"] = seq
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": url,
        "type": "object",
        "title": title,
        "properties": props,
    }


def feature_doc(found: CityProperties, types: list[str] | None, url: str, title: str) -> dict:
    """The JSON Schema of one GeoJSON feature of the items, for clients that read the
    collection's `describedby` link as GDAL does (its properties' types make its columns)."""
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": url,
        "title": title,
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": _geojson_geometry(found.geometry_types(types)),
            "properties": {
                "type": "object",
                "properties": feature_properties(found, types, for_gdal=True),
            },
        },
    }


def _geojson_geometry(kinds: frozenset[str]) -> dict[str, Any]:
    """A GeoJSON geometry of one of `kinds` (any type when empty), or none."""
    kind: dict[str, Any] = {"type": "string"}
    if kinds:
        kind["enum"] = sorted(kinds)
    geometry = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": kind, "coordinates": {"type": "array"}},
    }
    return {"oneOf": [{"type": "null"}, geometry]}
