"""The SensorThings API 1.1 (Part 1, Sensing) data model as CIM stores it: each entity set, its
properties and the columns that hold them, its navigation properties and how they join; the
resource paths of URLs and MQTT topics (`Things(1)/Datastreams`); and the standard's times.

Reads (twin.read), writes (twin.store, twin.observations), the HTTP routes and the MQTT bridge
all describe entities through this one table, so that a name means the same everywhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cim.errors import InvalidInput, NotFound

VERSION = "v1.1"


@dataclass(frozen=True)
class Prop:
    """A property of an entity: its name in JSON, the column(s) that hold it, its kind for
    filters ('text', 'json', 'time', 'interval', 'geometry', 'id', 'result'), whether a client
    may write it and whether a create must give it."""

    name: str
    column: str
    kind: str
    writable: bool = True
    required: bool = False
    end_column: str | None = None  # an interval's end


@dataclass(frozen=True)
class Nav:
    """A navigation property: the entity set it leads to, whether it is a collection, and how a
    child joins its parent. A to-one names the parent's column that holds the child's id; a
    collection gives the SQL (over the child c, or the link table l when neither holds the
    other's id) that yields the parent's id, which also fetches the children of many parents
    at once."""

    name: str
    target: str
    many: bool
    parent_key: str = ""  # a collection: SQL over c (or l) giving the parent's id
    link: str | None = None  # the table l linking parent and child, if any
    child_cond: str | None = None  # how l joins the child c
    parent_column: str | None = None  # a to-one: the parent's column holding the child's id

    def joins(self, parent: str, child: str) -> tuple[str, str]:
        """(FROM items, WHERE condition) that join the child alias to the parent alias."""
        table = SETS[self.target].table
        if not self.many:
            return f"{table} {child}", f"{child}.id = {parent}.{self.parent_column}"
        key = _alias(self.parent_key, child)
        if self.link:
            cond = _alias(self.child_cond or "", child)
            return f"{table} {child}, {self.link} {child}_l", f"{key} = {parent}.id AND {cond}"
        return f"{table} {child}", f"{key} = {parent}.id"


def _alias(sql: str, child: str) -> str:
    return re.sub(r"\bl\.", f"{child}_l.", re.sub(r"\bc\.", f"{child}.", sql))


@dataclass(frozen=True)
class EntitySet:
    name: str  # Things
    singular: str  # Thing
    table: str
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...] = field(default_factory=tuple)

    def prop(self, name: str) -> Prop | None:
        for p in self.props:
            if p.name == name:
                return p
        return None

    def nav(self, name: str) -> Nav | None:
        for n in self.navs:
            if n.name == name:
                return n
        return None


def _common(*props: Prop) -> tuple[Prop, ...]:
    return (Prop("@iot.id", "id", "id", writable=False), *props)


NAME = Prop("name", "name", "text", required=True)
DESCRIPTION = Prop("description", "description", "text", required=True)
PROPERTIES = Prop("properties", "properties", "json")
ENCODING = Prop("encodingType", "encoding_type", "text", required=True)

SETS: dict[str, EntitySet] = {
    s.name: s
    for s in (
        EntitySet(
            "Things",
            "Thing",
            "twin_thing",
            _common(NAME, DESCRIPTION, PROPERTIES),
            (
                Nav(
                    "Locations",
                    "Locations",
                    True,
                    "l.thing_id",
                    "twin_thing_location",
                    "l.location_id = c.id",
                ),
                Nav("HistoricalLocations", "HistoricalLocations", True, "c.thing_id"),
                Nav("Datastreams", "Datastreams", True, "c.thing_id"),
            ),
        ),
        EntitySet(
            "Locations",
            "Location",
            "twin_location",
            _common(
                NAME,
                DESCRIPTION,
                ENCODING,
                Prop("location", "location", "geometry", required=True),
                PROPERTIES,
            ),
            (
                Nav(
                    "Things",
                    "Things",
                    True,
                    "l.location_id",
                    "twin_thing_location",
                    "l.thing_id = c.id",
                ),
                Nav(
                    "HistoricalLocations",
                    "HistoricalLocations",
                    True,
                    "l.location_id",
                    "twin_historical_location_location",
                    "l.historical_location_id = c.id",
                ),
            ),
        ),
        EntitySet(
            "HistoricalLocations",
            "HistoricalLocation",
            "twin_historical_location",
            _common(Prop("time", "time", "time", required=True)),
            (
                Nav("Thing", "Things", False, parent_column="thing_id"),
                Nav(
                    "Locations",
                    "Locations",
                    True,
                    "l.historical_location_id",
                    "twin_historical_location_location",
                    "l.location_id = c.id",
                ),
            ),
        ),
        EntitySet(
            "Datastreams",
            "Datastream",
            "twin_datastream",
            _common(
                NAME,
                DESCRIPTION,
                Prop("observationType", "observation_type", "text", required=True),
                Prop("unitOfMeasurement", "unit_of_measurement", "json", required=True),
                Prop(
                    "phenomenonTime",
                    "(SELECT x.first_time FROM twin_latest x WHERE x.datastream_id = {a}.id)",
                    "interval",
                    writable=False,
                    end_column="(SELECT x.last_time FROM twin_latest x WHERE "
                    "x.datastream_id = {a}.id)",
                ),
                Prop(
                    "resultTime",
                    "(SELECT x.first_result_time FROM twin_latest x WHERE "
                    "x.datastream_id = {a}.id)",
                    "interval",
                    writable=False,
                    end_column="(SELECT x.last_result_time FROM twin_latest x WHERE "
                    "x.datastream_id = {a}.id)",
                ),
                PROPERTIES,
            ),
            (
                Nav("Thing", "Things", False, parent_column="thing_id"),
                Nav("Sensor", "Sensors", False, parent_column="sensor_id"),
                Nav(
                    "ObservedProperty",
                    "ObservedProperties",
                    False,
                    parent_column="observed_property_id",
                ),
                Nav("Observations", "Observations", True, "c.datastream_id"),
            ),
        ),
        EntitySet(
            "Sensors",
            "Sensor",
            "twin_sensor",
            _common(
                NAME,
                DESCRIPTION,
                ENCODING,
                Prop("metadata", "metadata", "json", required=True),
                PROPERTIES,
            ),
            (Nav("Datastreams", "Datastreams", True, "c.sensor_id"),),
        ),
        EntitySet(
            "ObservedProperties",
            "ObservedProperty",
            "twin_observed_property",
            _common(
                NAME,
                Prop("definition", "definition", "text", required=True),
                DESCRIPTION,
                PROPERTIES,
            ),
            (Nav("Datastreams", "Datastreams", True, "c.observed_property_id"),),
        ),
        EntitySet(
            "Observations",
            "Observation",
            "twin_observation",
            _common(
                Prop("phenomenonTime", "phenomenon_start", "interval", end_column="phenomenon_end"),
                Prop("resultTime", "result_time", "time"),
                Prop("result", "result_number", "result", required=True),
                Prop("resultQuality", "result_quality", "json"),
                Prop("validTime", "valid_start", "interval", end_column="valid_end"),
                Prop("parameters", "parameters", "json"),
            ),
            (
                Nav("Datastream", "Datastreams", False, parent_column="datastream_id"),
                Nav("FeatureOfInterest", "FeaturesOfInterest", False, parent_column="feature_id"),
            ),
        ),
        EntitySet(
            "FeaturesOfInterest",
            "FeatureOfInterest",
            "twin_feature",
            _common(
                NAME,
                DESCRIPTION,
                ENCODING,
                Prop("feature", "feature", "geometry", required=True),
                PROPERTIES,
            ),
            (Nav("Observations", "Observations", True, "c.feature_id"),),
        ),
    )
}
SINGULAR = {s.singular: s for s in SETS.values()}

# Observation types (OGC O&M) and the results they take
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COUNT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
TRUTH = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation"
CATEGORY = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation"
ANY = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation"
COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"
OBSERVATION_TYPES = {
    MEASUREMENT: "a number",
    COUNT: "an integer",
    TRUTH: "true or false",
    CATEGORY: "a text (a category's URI or name)",
    ANY: "any JSON value",
    COMPLEX: "a JSON object",
}


def check_result(value: Any, observation_type: str, where: str) -> tuple[float | None, Any]:
    """The result as stored: (number, None) for a number, (None, value) for anything else.

    Raises:
        InvalidInput: a result of the wrong type for the Datastream, or a number that is not
        finite.
    """
    kind = type(value)
    if kind is float and observation_type == MEASUREMENT and math.isfinite(value):
        return value, None  # the common case, first
    is_number = kind is int or kind is float
    if is_number and not math.isfinite(value):
        raise InvalidInput(f"{where}: result {value} is not a finite number")
    wanted = OBSERVATION_TYPES.get(observation_type, "any JSON value")
    ok = {
        MEASUREMENT: is_number,
        COUNT: is_number and float(value).is_integer(),
        TRUTH: isinstance(value, bool),
        CATEGORY: isinstance(value, str),
        COMPLEX: isinstance(value, dict),
    }.get(observation_type, value is not None)
    if not ok:
        named = observation_type.rsplit("/", 1)[-1]
        raise InvalidInput(f"{where}: result {value!r} is not {wanted}, as {named} needs")
    if is_number:
        return float(value), None
    return None, value


# Times: ISO 8601 with a UTC offset; an interval is "start/end".


def parse_time(text: Any, where: str) -> datetime:
    """An ISO 8601 instant with its UTC offset, in UTC.

    Raises:
        InvalidInput: not a time, or a time without an offset (in China's UTC+8 a time without
        one is eight hours off if guessed wrong, so it is refused rather than guessed).
    """
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{where}: {text!r} is not an ISO 8601 time (e.g. 2026-12-02T08:00:00+08:00)"
        ) from None
    zone = parsed.tzinfo
    if zone is None:
        raise InvalidInput(
            f"{where}: {text!r} has no UTC offset; add Z or e.g. +08:00 for Beijing time"
        )
    if not 1900 <= parsed.year <= 2200:
        raise InvalidInput(f"{where}: {text!r} is outside the years 1900 to 2200")
    return parsed if zone is UTC else parsed.astimezone(UTC)


def parse_interval(text: Any, where: str) -> tuple[datetime, datetime | None]:
    """An instant (end None) or an interval "start/end" with start <= end."""
    if type(text) is str and "/" in text:
        first, _, second = text.partition("/")
        start, end = parse_time(first, where), parse_time(second, where)
        if end < start:
            raise InvalidInput(f"{where}: interval {text!r} ends before it starts")
        return start, end
    return parse_time(text, where), None


def format_time(value: datetime | None) -> str | None:
    """UTC, milliseconds, Z: as FROST-Server writes them."""
    if value is None:
        return None
    if value.tzinfo is not UTC:  # also UTC as a ZoneInfo (psycopg's), slow to write
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:23] + "Z"


def format_interval(start: datetime | None, end: datetime | None) -> str | None:
    if start is None:
        return None
    if end is None or end == start:
        return format_time(start)
    return f"{format_time(start)}/{format_time(end)}"


# Resource paths: Things(1)/Datastreams(2)/Observations, Things(1)/name/$value, .../$ref


@dataclass(frozen=True)
class Step:
    set: EntitySet
    id: int | None  # None: the whole collection (or a to-one navigation)
    nav: Nav | None = None  # how this step was reached from the previous one


@dataclass(frozen=True)
class ResourcePath:
    steps: tuple[Step, ...]
    member: str | None = None  # a property: Things(1)/name
    value: bool = False  # .../$value
    ref: bool = False  # .../$ref

    @property
    def last(self) -> Step:
        return self.steps[-1]

    @property
    def is_collection(self) -> bool:
        last = self.last
        return last.id is None and (last.nav is None or last.nav.many) and self.member is None


_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((\d+|'[^']*')\))?$")


def parse_path(path: str) -> ResourcePath:
    """A resource path below the version, e.g. "Datastreams(3)/Observations".

    Raises:
        NotFound: an entity set, navigation or property that does not exist.
        InvalidInput: an id that is not an integer.
    """
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        raise NotFound("no entity set named; see the list at /v1.1")
    steps: list[Step] = []
    prop: str | None = None
    value = ref = False
    for i, segment in enumerate(segments):
        if segment == "$value" and prop is not None and i == len(segments) - 1:
            value = True
            continue
        if segment == "$ref" and i == len(segments) - 1 and steps:
            ref = True
            continue
        if prop is not None:
            raise NotFound(f"nothing below the property {prop!r}: {path}")
        match = _SEGMENT.match(segment)
        if not match:
            raise NotFound(f"{segment!r} is not an entity set, navigation or property: {path}")
        name, raw_id = match.groups()
        ident = None
        if raw_id is not None:
            if raw_id.startswith("'"):
                raise InvalidInput(f"{segment}: ids here are integers, e.g. {name}(1)")
            ident = int(raw_id)
        if not steps:
            if name not in SETS:
                raise NotFound(f"no entity set {name!r}; there are {', '.join(SETS)}")
            steps.append(Step(SETS[name], ident))
            continue
        last = steps[-1]
        if last.id is None and (last.nav is None or last.nav.many):
            raise NotFound(f"{segment!r} follows a collection; name one entity by its id first")
        nav = last.set.nav(name)
        if nav is not None:
            if ident is not None and not nav.many:
                raise NotFound(f"{name} is a single entity; it takes no id: {path}")
            steps.append(Step(SETS[nav.target], ident, nav))
            continue
        if raw_id is None and (last.set.prop(name) is not None or name == "id"):
            prop = name
            continue
        raise NotFound(f"{last.set.singular} has no property or navigation {name!r}")
    return ResourcePath(tuple(steps), prop, value, ref)
