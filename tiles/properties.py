"""The one property schema of a city's tiles: one class whose properties are CIM's own (id,
cim_id, type, height) and every attribute of the city, each with one type decided from what the
attribute holds in the whole city (`decide`), never from one tile's objects — a viewer that
styles or filters by a property must find it with the same type in every tile. The type rule:

- BOOLEAN when every object of the city has a true/false value (a boolean cannot mark a gap);
- INT32 when every value is a whole number in (-2**31, 2**31), FLOAT64 when every value is a
  number (whole numbers beyond 2**53 keep float64's precision, as JSON does in a browser);
- STRING otherwise: text, lists and objects (as JSON text), and any mix of kinds — a number or
  a boolean among texts is written as its JSON text ("12", "1.5", "true").

A property some object lacks gets a noData value (INT32 -2147483648, FLOAT64 -3.4028e38). Every
text property has the noData value "\\u0000" (NUL, which PostgreSQL text never holds): a
missing or an empty text is written as it (tiles.metadata). Pure: statistics in, schema out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from cim.attributes import TILE_PROPERTIES, published_name

CLASS = "cityobject"
POINT_CLASS = "point"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INT32_NODATA = -2147483648
FLOAT_NODATA = -3.4028234663852886e38
TEXT_NODATA = "\u0000"  # PostgreSQL's text and jsonb cannot hold it: never a real value
OWN = ("id", "cim_id", "type", "height")  # CIM's own properties, before the attributes
STRING, BOOLEAN, INT32, FLOAT64 = "STRING", "BOOLEAN", "INT32", "FLOAT64"
# the point-cloud attributes a tile's LAS points carry (EXT_structural_metadata attributes)
POINT_PROPERTIES = {
    "classification": {"type": "SCALAR", "componentType": "UINT8"},
    "intensity": {"type": "SCALAR", "componentType": "UINT16"},
}


class SchemaMismatch(ValueError):
    """A tile's object holds a value its city's schema has no room for (the data changed
    after the schema was decided): the tile must be made again with a fresh schema."""


@dataclass(frozen=True)
class KeyStats:
    """What one attribute holds over some objects: how many values of each JSON kind, how many
    of the numbers have a fraction or exponent, and the numbers' range."""

    strings: int = 0
    numbers: int = 0
    booleans: int = 0
    others: int = 0  # lists and objects
    fractions: int = 0
    low: float | None = None
    high: float | None = None

    @property
    def present(self) -> int:
        """Objects with a value (JSON null is no value)."""
        return self.strings + self.numbers + self.booleans + self.others

    def merge(self, other: KeyStats) -> KeyStats:
        """The statistics of both sets of objects together."""
        lows = [v for v in (self.low, other.low) if v is not None]
        highs = [v for v in (self.high, other.high) if v is not None]
        return KeyStats(
            self.strings + other.strings,
            self.numbers + other.numbers,
            self.booleans + other.booleans,
            self.others + other.others,
            self.fractions + other.fractions,
            min(lows) if lows else None,
            max(highs) if highs else None,
        )

    @classmethod
    def of(cls, values: Iterable[Any]) -> KeyStats:
        """The statistics of some values as Python has them from JSON."""
        strings = numbers = booleans = others = fractions = 0
        low = high = None
        for v in values:
            if v is None:
                continue
            if isinstance(v, bool):
                booleans += 1
            elif isinstance(v, (int, float)):
                numbers += 1
                fractions += isinstance(v, float)
                low = v if low is None else min(low, v)
                high = v if high is None else max(high, v)
            elif isinstance(v, str):
                strings += 1
            else:
                others += 1
        return cls(
            strings,
            numbers,
            booleans,
            others,
            fractions,
            None if low is None else float(low),
            None if high is None else float(high),
        )


@dataclass(frozen=True)
class DatasetStats:
    """What a dataset's tiled objects hold: how many there are, how many are point clouds, how
    many have a height, their largest id, and each attribute's statistics."""

    objects: int
    clouds: int = 0
    heights: int = 0
    max_id: int = 0
    keys: Mapping[str, KeyStats] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A plain form to keep in the database."""
        return {
            "objects": self.objects,
            "clouds": self.clouds,
            "heights": self.heights,
            "max_id": self.max_id,
            "keys": {k: list(vars(s).values()) for k, s in self.keys.items()},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DatasetStats:
        """Back from `to_json`."""
        return cls(
            doc["objects"],
            doc["clouds"],
            doc["heights"],
            doc["max_id"],
            {k: KeyStats(*v) for k, v in doc["keys"].items()},
        )


@dataclass(frozen=True)
class Property:
    """One property of the class: its name (the attribute's key, or CIM's own name), its
    identifier in the schema, its type, and whether some object lacks it."""

    name: str
    ident: str
    kind: str
    gaps: bool

    def schema(self) -> dict[str, Any]:
        """Its definition in the class."""
        out: dict[str, Any] = {"name": self.name}
        if self.kind in (STRING, BOOLEAN):
            out["type"] = self.kind
        else:
            out.update(type="SCALAR", componentType=self.kind)
        if self.kind == STRING or self.gaps:
            nodata = {STRING: TEXT_NODATA, INT32: INT32_NODATA, FLOAT64: FLOAT_NODATA}
            out.update(required=False, noData=nodata[self.kind])
        return out


@dataclass(frozen=True)
class PropertySchema:
    """The one class of a city's tiles; `names` maps an attribute's key to its property name
    (an attribute called like one of CIM's own properties becomes attribute_<key>, by the rule
    of `cim.attributes`)."""

    properties: tuple[Property, ...]
    names: Mapping[str, str]
    points: bool = False  # the city has point clouds: their point class is in the schema

    @cached_property
    def json(self) -> dict[str, Any]:
        """The EXT_structural_metadata schema object (the same in every tile of the city)."""
        classes: dict[str, Any] = {
            CLASS: {
                "name": "City object",
                "properties": {p.ident: p.schema() for p in self.properties},
            }
        }
        if self.points:
            classes[POINT_CLASS] = {"name": "Point-cloud point", "properties": POINT_PROPERTIES}
        return {"id": "cim", "classes": classes}

    @cached_property
    def digest(self) -> str:
        """A short digest of the schema: tiles made with another one must be made again."""
        return hashlib.sha256(orjson.dumps(self.json, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def columns(
        self, own: Mapping[str, list[Any]], attributes: list[dict[str, Any]]
    ) -> dict[str, list[Any]]:
        """The values of many objects by property name, a list each (None where an object lacks
        the property): CIM's own (`own`: id, cim_id, type, height) and each object's attributes.
        Column by column: a tile's table is made of columns, and a dict per object cost more
        than the rest of its row.

        Raises:
            SchemaMismatch: an attribute the schema does not know.
        """
        out = dict(own)
        keys = set().union(*attributes)
        unknown = keys - self.names.keys()
        if unknown:
            raise SchemaMismatch(f"attribute {min(unknown)!r} is not in the city's schema")
        for key in keys:
            out[self.names[key]] = [a.get(key) for a in attributes]
        return out


def _identifier(name: str, taken: set[str]) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not ident or not _IDENT.match(ident):
        ident = "a_" + ident
    base, n = ident, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    taken.add(ident)
    return ident


def kind_of(stats: KeyStats, objects: int) -> str:
    """The type of an attribute over a city of `objects` objects (the rule in the module's
    docstring)."""
    if stats.strings or stats.others or (stats.numbers and stats.booleans):
        return STRING
    if stats.booleans:
        return BOOLEAN if stats.booleans == objects else STRING
    if stats.numbers:
        low, high = stats.low, stats.high  # None past float64's range (kept as JSON null)
        if stats.fractions or low is None or high is None:
            return FLOAT64
        return INT32 if -(2**31) < low and high < 2**31 else FLOAT64
    return STRING  # never a value: a text column of noData


def decide(datasets: Iterable[DatasetStats]) -> PropertySchema:
    """The schema of a city from the statistics of its datasets."""
    objects = clouds = heights = max_id = 0
    keys: dict[str, KeyStats] = {}
    for d in datasets:
        objects += d.objects
        clouds += d.clouds
        heights += d.heights
        max_id = max(max_id, d.max_id)
        for key, stats in d.keys.items():
            keys[key] = keys[key].merge(stats) if key in keys else stats
    taken: set[str] = set()
    own = [
        Property("id", _identifier("id", taken), STRING, False),
        Property(
            "cim_id", _identifier("cim_id", taken), INT32 if max_id < 2**31 else FLOAT64, False
        ),
        Property("type", _identifier("type", taken), STRING, False),
        Property("height", _identifier("height", taken), FLOAT64, heights < objects),
    ]
    names = {key: published_name(key, TILE_PROPERTIES) for key in keys}  # one rule for all
    attributes = [
        Property(
            names[key],
            _identifier(names[key], taken),
            kind_of(keys[key], objects),
            keys[key].present < objects,
        )
        for key in sorted(keys, key=lambda k: names[k])
    ]
    return PropertySchema(tuple(own + attributes), names, clouds > 0)


def schema_of_rows(rows: list[dict[str, Any]]) -> PropertySchema:
    """The schema of these rows alone (columns in their order of first appearance), by the
    same rule as a city's: for tools and tests that have rows but no city."""
    order = dict.fromkeys(k for row in rows[:1] for k in row)
    order.update(dict.fromkeys(sorted(set().union(*rows) - set(order))))
    taken: set[str] = set()
    properties = []
    for key in order:
        stats = KeyStats.of(row.get(key) for row in rows)
        properties.append(
            Property(
                key, _identifier(key, taken), kind_of(stats, len(rows)), stats.present < len(rows)
            )
        )
    return PropertySchema(tuple(properties), {k: k for k in order})
