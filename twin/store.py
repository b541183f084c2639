"""Writing the twin's entities: create (deep insert and links by `@iot.id`), update (merge,
JSON Patch, replace), delete, for Things, Locations, HistoricalLocations, Sensors,
ObservedProperties, Datastreams and FeaturesOfInterest; and Observations from any source (one,
a deep insert, a Data Array, an MQTT message), checked as a batch against their Datastreams,
given their FeatureOfInterest and stored by twin.observations.

Every request is one transaction: a body that fails anywhere leaves nothing behind. A Thing may
name the city object it sits on or in (`properties.cityObject`: `{"city": CODE, "id": ID}`,
the object's id in the Features API); with no Location of its own it is placed at the object.
"""

# ruff: noqa: S608  (table and column names come from twin.entities, never from a request;
# every value is a bind parameter)
from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import orjson
from sqlalchemy import Connection, Engine, text

from cim import jsonvalues
from cim.errors import Forbidden, InvalidInput, NotFound
from twin import observations
from twin.entities import (
    OBSERVATION_TYPES,
    SETS,
    EntitySet,
    ResourcePath,
    check_result,
    parse_interval,
    parse_time,
)
from twin.observations import PARTITIONS, NewObservation
from twin.read import property_value

GEOJSON_TYPES = ("application/geo+json", "application/vnd.geo+json")
CITY_OBJECT = "cityObject"  # properties.cityObject = {"city": CODE, "id": OBJECT ID}
MAX_BATCH = 100_000  # Observations in one request


@dataclass(frozen=True)
class Writer:
    """Who writes: a `manager` may change anything; a `device` only adds the Observations of
    the Datastreams of its Things."""

    name: str
    role: str
    things: tuple[int, ...] = field(default_factory=tuple)


@dataclass
class Created:
    """What a request created first (its answer's Location) and every entity it touched, by
    set, for the notifications of subscribers."""

    set: EntitySet
    id: int
    touched: dict[str, list[int]] = field(default_factory=dict)

    def add(self, name: str, ident: int) -> None:
        self.touched.setdefault(name, []).append(ident)


def _require_manager(writer: Writer, what: str) -> None:
    if writer.role != "manager":
        raise Forbidden(f"{writer.name} is a {writer.role} key: it may not {what}")


# --- checking bodies


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


@functools.cache
def _allowed_keys(name: str) -> frozenset[str]:
    """The keys a body of an entity set may have."""
    s = SETS[name]
    allowed = {p.name for p in s.props if p.writable} | {n.name for n in s.navs} | {"@iot.id"}
    allowed |= {"@iot.selfLink"} | {f"{n.name}@iot.navigationLink" for n in s.navs}
    return frozenset(allowed)


def _known_keys(s: EntitySet, body: dict[str, Any], where: str) -> None:
    allowed = _allowed_keys(s.name)
    if allowed.issuperset(body):
        return
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(
            f"{where}: {s.singular} has no {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(a for a in allowed if '@' not in a))}"
        )


def _text(body: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{where}: {key} is missing")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: {key} must be a text, got {value!r}")
    return value


def _props(body: dict[str, Any], key: str, where: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: {key} must be a JSON object")
    return _dump(value, f"{where}: {key}")


def _dump(value: Any, where: str) -> str:
    try:
        return jsonvalues.dumps(value).decode()
    except TypeError as e:
        raise InvalidInput(f"{where}: {e}") from None


def _link_id(value: Any, where: str) -> int | None:
    """The id of `{"@iot.id": N}` (a link to an existing entity), else None (a new one)."""
    if isinstance(value, dict) and "@iot.id" in value:
        ident = value["@iot.id"]
        if isinstance(ident, bool) or not isinstance(ident, int):
            raise InvalidInput(f"{where}: @iot.id must be an integer, got {ident!r}")
        return ident
    return None


def geojson_geometry(value: Any, where: str) -> dict[str, Any]:
    """The geometry of a GeoJSON geometry or Feature, with coordinates on the Earth (WGS 84
    longitude, latitude): a location 1,000 km off in a projected CRS is refused, not stored."""
    value = _object(value, where)
    if value.get("type") == "Feature":
        value = _object(value.get("geometry"), f"{where}: geometry")
    kind = value.get("type")
    if kind == "GeometryCollection":
        for i, g in enumerate(value.get("geometries") or []):
            geojson_geometry(g, f"{where}: geometries[{i}]")
        return value
    if kind not in (
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
    ):
        raise InvalidInput(f"{where}: {kind!r} is not a GeoJSON geometry type")

    def walk(c: Any) -> None:
        if isinstance(c, list) and c and all(isinstance(x, int | float) for x in c):
            if isinstance(c[0], bool) or len(c) < 2:
                raise InvalidInput(f"{where}: position {c!r} needs longitude and latitude")
            lon, lat = c[0], c[1]
            if not all(math.isfinite(x) for x in c):
                raise InvalidInput(f"{where}: position {c!r} is not finite")
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise InvalidInput(
                    f"{where}: position {c!r} is not a WGS 84 longitude and latitude "
                    "(GeoJSON is always EPSG:4326, longitude first)"
                )
            return
        if not isinstance(c, list) or not c:
            raise InvalidInput(f"{where}: coordinates {c!r} are not GeoJSON positions")
        for x in c:
            walk(x)

    walk(value.get("coordinates"))
    return value


# --- create


def create(engine: Engine, path: ResourcePath, body: Any, writer: Writer) -> Created:
    """Create what a POST to a collection path says (with its deep-inserted entities), in one
    transaction. A path below an entity (`Datastreams(1)/Observations`) links the new entity
    to it."""
    step = path.last
    s = step.set
    body = _object(body, f"POST {s.name}")
    forced: dict[str, int] = {}
    if len(path.steps) > 1:
        parent = path.steps[-2]
        nav = step.nav
        assert nav is not None
        if parent.id is None:
            raise InvalidInput(f"POST {s.name}: name the parent by its id")
        back = _back_nav(parent.set, nav.name)
        if back is None:
            raise InvalidInput(f"POST: {s.name} cannot be created below {parent.set.name}")
        forced[back] = parent.id
    if s.name != "Observations":
        _require_manager(writer, f"create {s.name}")
    PARTITIONS.ensure(engine, _observation_times(s, body))
    with engine.begin() as conn:
        batch = _Batch()
        ident = _insert(conn, s, body, writer, s.singular, forced, batch)
        created = Created(s, ident)
        batch.flush(conn, writer, created)
        if created.id == -1:
            created.id = batch.first_id
        return created


def create_many(engine: Engine, set_name: str, bodies: list[Any], writer: Writer) -> list[int]:
    """Create many entities of one set (each with its deep inserts) in one transaction: all
    or none. For loaders (the demo city's sensors), where a transaction each took longer
    than the work. Returns their ids in order."""
    s = SETS[set_name]
    _require_manager(writer, f"create {s.name}")
    PARTITIONS.ensure(engine, [t for b in bodies for t in _observation_times(s, b)])
    ids = []
    with engine.begin() as conn:
        for i, body in enumerate(bodies):
            batch = _Batch()
            ident = _insert(conn, s, body, writer, f"{s.singular}[{i}]", {}, batch)
            batch.flush(conn, writer, Created(s, ident))
            ids.append(ident)
    return ids


def _back_nav(parent: EntitySet, nav_name: str) -> str | None:
    """The navigation of the child that leads back to the parent, e.g. Datastreams(1)/
    Observations → an Observation's "Datastream"."""
    pairs = {
        ("Things", "Datastreams"): "Thing",
        ("Things", "Locations"): "Things",
        ("Things", "HistoricalLocations"): "Thing",
        ("Locations", "Things"): "Locations",
        ("Locations", "HistoricalLocations"): "Locations",
        ("HistoricalLocations", "Locations"): "HistoricalLocations",
        ("Datastreams", "Observations"): "Datastream",
        ("Sensors", "Datastreams"): "Sensor",
        ("ObservedProperties", "Datastreams"): "ObservedProperty",
        ("FeaturesOfInterest", "Observations"): "FeatureOfInterest",
    }
    return pairs.get((parent.name, nav_name))


def _observation_times(s: EntitySet, body: Any) -> list[datetime]:
    """Each month a body's Observations fall in (their partitions are made before the write
    begins); unparseable times are left for the checks that name them."""
    times = [datetime.now(UTC)]

    def collect(obs: Any) -> None:
        if isinstance(obs, dict) and "phenomenonTime" in obs:
            try:
                start, end = parse_interval(obs["phenomenonTime"], "")
                times.append(start)
            except InvalidInput:
                pass

    def walk(set_: EntitySet, item: Any) -> None:
        if not isinstance(item, dict):
            return
        if set_.name == "Observations":
            collect(item)
        for nav in set_.navs:
            child = item.get(nav.name)
            target = SETS[nav.target]
            for c in child if isinstance(child, list) else [child]:
                walk(target, c)

    walk(s, body)
    return times


class _Batch:
    """Observations met while inserting a body, stored together at the end (their Datastreams
    and features may be created by the same body)."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], str, int | None, int | None]] = []
        self.first_id = -1

    def add(
        self, body: dict[str, Any], where: str, datastream: int | None, feature: int | None
    ) -> None:
        self.items.append((body, where, datastream, feature))

    def flush(self, conn: Connection, writer: Writer, created: Created) -> None:
        if not self.items:
            return
        rows = [r for r in prepare_observations(conn, self.items, writer) if r is not None]
        ids = observations.insert(conn, rows)
        self.first_id = ids[0]
        for i in ids:
            created.add("Observations", i)


def _insert(
    conn: Connection,
    s: EntitySet,
    body: Any,
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    """Insert one entity of a body (or link it when the body is `{"@iot.id": N}`); returns its
    id. Observations are held in `batch` and get -1."""
    body = _object(body, where)
    link = _link_id(body, where)
    if link is not None:
        if len(body) > 1 and set(body) - {"@iot.id", "@iot.selfLink"}:
            raise InvalidInput(f"{where}: a link names only @iot.id, not other properties")
        if not conn.execute(text(f"SELECT 1 FROM {s.table} WHERE id = :i"), {"i": link}).first():
            raise InvalidInput(f"{where}: {s.singular} {link} does not exist")
        return link
    _known_keys(s, body, where)
    insert = _INSERTS[s.name]
    return insert(conn, body, writer, where, forced, batch)


def _children(body: dict[str, Any], name: str, where: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: {name} must be a list")
    return value


def _one(body: dict[str, Any], name: str, where: str, forced: dict[str, int]) -> Any:
    if name in forced:
        if name in body and _link_id(body[name], where) != forced[name]:
            raise InvalidInput(f"{where}: {name} is given by the URL; leave it out of the body")
        return {"@iot.id": forced[name]}
    if body.get(name) is None:
        raise InvalidInput(f'{where}: {name} is missing (a new one, or a link {{"@iot.id": N}})')
    return body[name]


def _insert_one(
    conn: Connection,
    s: EntitySet,
    name: str,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    """The entity a body's to-one navigation `name` gives (new, linked, or forced by the URL)."""
    return _insert(conn, s, _one(body, name, where, forced), writer, f"{where}.{name}", {}, batch)


def _insert_thing(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    name = _text(body, "name", where)
    description = _text(body, "description", where)
    city, obj = _city_object(conn, body.get("properties"), where)
    ident = conn.execute(
        text(
            "INSERT INTO twin_thing (name, description, properties, city_code, object_id) "
            "VALUES (:n, :d, CAST(:p AS jsonb), :c, :o) RETURNING id"
        ),
        {"n": name, "d": description, "p": _props(body, "properties", where), "c": city, "o": obj},
    ).scalar_one()
    locations = [
        _insert(conn, SETS["Locations"], item, writer, f"{where}.Locations[{i}]", {}, batch)
        for i, item in enumerate(_children(body, "Locations", where))
    ]
    if "Locations" in forced:
        locations.append(forced["Locations"])
    if not locations and city is not None and obj is not None:
        locations.append(_object_location(conn, city, obj, name or ""))
    if locations:
        set_locations(conn, ident, locations)
    for i, item in enumerate(_children(body, "Datastreams", where)):
        _insert(
            conn,
            SETS["Datastreams"],
            item,
            writer,
            f"{where}.Datastreams[{i}]",
            {"Thing": ident},
            batch,
        )
    for i, item in enumerate(_children(body, "HistoricalLocations", where)):
        _insert(
            conn,
            SETS["HistoricalLocations"],
            item,
            writer,
            f"{where}.HistoricalLocations[{i}]",
            {"Thing": ident},
            batch,
        )
    return int(ident)


def _city_object(conn: Connection, props: Any, where: str) -> tuple[str | None, str | None]:
    """The city object a Thing's properties name (`cityObject`), checked to exist."""
    if not isinstance(props, dict) or props.get(CITY_OBJECT) is None:
        return None, None
    named = props[CITY_OBJECT]
    city = named.get("city") if isinstance(named, dict) else None
    obj = named.get("id") if isinstance(named, dict) else None
    if not isinstance(city, str) or not isinstance(obj, str):
        raise InvalidInput(
            f"{where}: properties.{CITY_OBJECT} names a city object as "
            '{"city": CITY CODE, "id": OBJECT ID}, both texts (the object\'s id in the '
            "Features API, /collections/CITY/items/ID)"
        )
    found = conn.execute(
        text("SELECT 1 FROM city_object WHERE city_code = :c AND source_id = :o"),
        {"c": city, "o": obj},
    ).first()
    if not found:
        raise InvalidInput(f"{where}: city {city!r} has no object {obj!r}")
    return city, obj


def _object_location(conn: Connection, city: str, obj: str, thing: str) -> int:
    """A Location at a city object: the centre of its footprint, at the top of the object."""
    row = conn.execute(
        text("""
        SELECT ST_AsGeoJSON(ST_MakePoint(ST_X(c), ST_Y(c), o.z_max), 7) AS g
        FROM city_object o,
             LATERAL (SELECT ST_Transform(ST_PointOnSurface(coalesce(o.footprint, o.bbox)),
                      4326) AS c) p
        WHERE o.city_code = :c AND o.source_id = :o"""),
        {"c": city, "o": obj},
    ).first()
    if row is None or row.g is None:
        raise InvalidInput(f"city {city!r} object {obj!r} has no footprint to place a Thing at")
    geometry = orjson.loads(row.g)
    if geometry["coordinates"][2] is None:
        geometry["coordinates"] = geometry["coordinates"][:2]
    ident = conn.execute(
        text(
            "INSERT INTO twin_location (name, description, encoding_type, location, geom) "
            "VALUES (:n, :d, 'application/geo+json', CAST(:l AS jsonb), "
            "ST_SetSRID(ST_Force2D(ST_GeomFromGeoJSON(:l)), 4326)) RETURNING id"
        ),
        {
            "n": f"{obj}",
            "d": f"the position of city object {obj} ({city}), where {thing} is",
            "l": orjson.dumps(geometry).decode(),
        },
    ).scalar_one()
    return int(ident)


def set_locations(conn: Connection, thing: int, locations: Iterable[int]) -> None:
    """Make these the Thing's current Locations, and record when (a HistoricalLocation)."""
    ids = sorted(set(locations))
    conn.execute(text("DELETE FROM twin_thing_location WHERE thing_id = :t"), {"t": thing})
    conn.execute(
        text(
            "INSERT INTO twin_thing_location (thing_id, location_id) "
            "SELECT :t, unnest(CAST(:ids AS bigint[]))"
        ),
        {"t": thing, "ids": ids},
    )
    hl = conn.execute(
        text(
            "INSERT INTO twin_historical_location (thing_id, time) VALUES (:t, now()) RETURNING id"
        ),
        {"t": thing},
    ).scalar_one()
    conn.execute(
        text(
            "INSERT INTO twin_historical_location_location (historical_location_id, "
            "location_id) SELECT :h, unnest(CAST(:ids AS bigint[]))"
        ),
        {"h": hl, "ids": ids},
    )


def _insert_placed(
    conn: Connection, table: str, member: str, body: dict[str, Any], where: str
) -> int:
    """A Location or FeatureOfInterest: its GeoJSON (`member`) kept as given, and the geometry
    it describes for spatial filters."""
    encoding = _text(body, "encodingType", where)
    if encoding not in GEOJSON_TYPES:
        raise InvalidInput(
            f"{where}: encodingType {encoding!r}: CIM reads {' or '.join(GEOJSON_TYPES)}"
        )
    if body.get(member) is None:
        raise InvalidInput(f"{where}: {member} is missing")
    geometry = geojson_geometry(body[member], f"{where}.{member}")
    sql = {
        "twin_location": "INSERT INTO twin_location (name, description, encoding_type, "
        "location, geom, properties) VALUES (:n, :d, :e, CAST(:j AS jsonb), "
        "ST_SetSRID(ST_Force2D(ST_GeomFromGeoJSON(:g)), 4326), CAST(:p AS jsonb)) RETURNING id",
        "twin_feature": "INSERT INTO twin_feature (name, description, encoding_type, "
        "feature, geom, properties) VALUES (:n, :d, :e, CAST(:j AS jsonb), "
        "ST_SetSRID(ST_Force2D(ST_GeomFromGeoJSON(:g)), 4326), CAST(:p AS jsonb)) RETURNING id",
    }[table]
    ident = conn.execute(
        text(sql),
        {
            "n": _text(body, "name", where),
            "d": _text(body, "description", where),
            "e": encoding,
            "j": _dump(body[member], where),
            "g": _dump(geometry, where),
            "p": _props(body, "properties", where),
        },
    ).scalar_one()
    return int(ident)


def _insert_location(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    ident = _insert_placed(conn, "twin_location", "location", body, where)
    things = [
        _insert(conn, SETS["Things"], item, writer, f"{where}.Things[{i}]", {}, batch)
        for i, item in enumerate(_children(body, "Things", where))
    ]
    if "Locations" in forced:  # Things(1)/Locations
        things.append(forced["Locations"])
    for thing in things:
        current = (
            conn.execute(
                text("SELECT location_id FROM twin_thing_location WHERE thing_id = :t"),
                {"t": thing},
            )
            .scalars()
            .all()
        )
        set_locations(conn, thing, [*current, ident])
    return int(ident)


def _insert_historical_location(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    time = parse_time(body.get("time"), f"{where}.time")
    thing = _insert_one(conn, SETS["Things"], "Thing", body, writer, where, forced, batch)
    ident = conn.execute(
        text(
            "INSERT INTO twin_historical_location (thing_id, time) VALUES (:t, :time) RETURNING id"
        ),
        {"t": thing, "time": time},
    ).scalar_one()
    for i, item in enumerate(_children(body, "Locations", where)):
        loc = _insert(conn, SETS["Locations"], item, writer, f"{where}.Locations[{i}]", {}, batch)
        conn.execute(
            text(
                "INSERT INTO twin_historical_location_location (historical_location_id, "
                "location_id) VALUES (:h, :l) ON CONFLICT DO NOTHING"
            ),
            {"h": ident, "l": loc},
        )
    return int(ident)


def _insert_sensor(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    if "metadata" not in body or body["metadata"] is None:
        raise InvalidInput(f"{where}: metadata is missing (a link to a datasheet, or JSON)")
    ident = conn.execute(
        text(
            "INSERT INTO twin_sensor (name, description, encoding_type, metadata, properties) "
            "VALUES (:n, :d, :e, CAST(:m AS jsonb), CAST(:p AS jsonb)) RETURNING id"
        ),
        {
            "n": _text(body, "name", where),
            "d": _text(body, "description", where),
            "e": _text(body, "encodingType", where),
            "m": _dump(body["metadata"], where),
            "p": _props(body, "properties", where),
        },
    ).scalar_one()
    for i, item in enumerate(_children(body, "Datastreams", where)):
        _insert(
            conn,
            SETS["Datastreams"],
            item,
            writer,
            f"{where}.Datastreams[{i}]",
            {"Sensor": ident},
            batch,
        )
    return int(ident)


def _insert_observed_property(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    ident = conn.execute(
        text(
            "INSERT INTO twin_observed_property (name, definition, description, properties) "
            "VALUES (:n, :df, :d, CAST(:p AS jsonb)) RETURNING id"
        ),
        {
            "n": _text(body, "name", where),
            "df": _text(body, "definition", where),
            "d": _text(body, "description", where),
            "p": _props(body, "properties", where),
        },
    ).scalar_one()
    for i, item in enumerate(_children(body, "Datastreams", where)):
        _insert(
            conn,
            SETS["Datastreams"],
            item,
            writer,
            f"{where}.Datastreams[{i}]",
            {"ObservedProperty": ident},
            batch,
        )
    return int(ident)


def check_unit(value: Any, where: str) -> str:
    unit = _object(value, f"{where}.unitOfMeasurement")
    unknown = set(unit) - {"name", "symbol", "definition"}
    if unknown:
        raise InvalidInput(
            f"{where}.unitOfMeasurement: no {', '.join(sorted(unknown))}; it "
            "takes name, symbol and definition"
        )
    for key in ("name", "symbol", "definition"):
        if unit.get(key) is not None and not isinstance(unit[key], str):
            raise InvalidInput(f"{where}.unitOfMeasurement.{key} must be a text")
    return _dump(unit, where)


def check_observation_type(value: Any, where: str) -> str:
    if value not in OBSERVATION_TYPES:
        raise InvalidInput(
            f"{where}: observationType {value!r} is not one of the O&M types: "
            + ", ".join(t.rsplit("/", 1)[-1] for t in OBSERVATION_TYPES)
            + " (http://www.opengis.net/def/observationType/OGC-OM/2.0/...)"
        )
    return str(value)


def _insert_datastream(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    observation_type = check_observation_type(body.get("observationType"), where)
    if body.get("unitOfMeasurement") is None:
        raise InvalidInput(f"{where}: unitOfMeasurement is missing")
    unit = check_unit(body["unitOfMeasurement"], where)
    name, description = _text(body, "name", where), _text(body, "description", where)
    thing, sensor, prop = (
        _insert_one(conn, SETS[target], name, body, writer, where, forced, batch)
        for name, target in (
            ("Thing", "Things"),
            ("Sensor", "Sensors"),
            ("ObservedProperty", "ObservedProperties"),
        )
    )
    ident = conn.execute(
        text(
            "INSERT INTO twin_datastream (name, description, observation_type, "
            "unit_of_measurement, properties, thing_id, sensor_id, observed_property_id) "
            "VALUES (:n, :d, :t, CAST(:u AS jsonb), CAST(:p AS jsonb), :th, :s, :op) "
            "RETURNING id"
        ),
        {
            "n": name,
            "d": description,
            "t": observation_type,
            "u": unit,
            "p": _props(body, "properties", where),
            "th": thing,
            "s": sensor,
            "op": prop,
        },
    ).scalar_one()
    for i, item in enumerate(_children(body, "Observations", where)):
        item = _object(item, f"{where}.Observations[{i}]")
        _known_keys(SETS["Observations"], item, f"{where}.Observations[{i}]")
        batch.add(item, f"{where}.Observations[{i}]", int(ident), None)
    return int(ident)


def _insert_feature(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    ident = _insert_placed(conn, "twin_feature", "feature", body, where)
    return int(ident)


def _insert_observation(
    conn: Connection,
    body: dict[str, Any],
    writer: Writer,
    where: str,
    forced: dict[str, int],
    batch: _Batch,
) -> int:
    datastream = _insert_one(
        conn, SETS["Datastreams"], "Datastream", body, writer, where, forced, batch
    )
    feature = None
    if "FeatureOfInterest" in forced or body.get("FeatureOfInterest") is not None:
        foi = _one(body, "FeatureOfInterest", where, forced)
        if _link_id(foi, where) is None:
            _require_manager(writer, "create FeaturesOfInterest")
        feature = _insert(
            conn,
            SETS["FeaturesOfInterest"],
            foi,
            writer,
            f"{where}.FeatureOfInterest",
            {},
            batch,
        )
    batch.add(body, where, datastream, feature)
    return -1


_INSERTS = {
    "Things": _insert_thing,
    "Locations": _insert_location,
    "HistoricalLocations": _insert_historical_location,
    "Sensors": _insert_sensor,
    "ObservedProperties": _insert_observed_property,
    "Datastreams": _insert_datastream,
    "FeaturesOfInterest": _insert_feature,
    "Observations": _insert_observation,
}


# --- Observations, in batches


def prepare_observations(
    conn: Connection,
    items: list[tuple[dict[str, Any], str, int | None, int | None]],
    writer: Writer,
    errors: dict[int, str] | None = None,
) -> list[NewObservation | None]:
    """Check a batch of Observation bodies (each with where it came from, its Datastream and,
    if given, its FeatureOfInterest) and make them rows: their Datastreams exist and the writer
    may write them (held against deletion until the transaction ends), results match each
    Datastream's observation type, times parse, and each without a FeatureOfInterest gets the
    one of its Thing's Location. The first bad one raises; with `errors`, each bad one is
    recorded there by its index instead and its place in the answer is None."""
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"{len(items)} Observations in one request; at most {MAX_BATCH}")
    streams = _datastreams(
        conn, {ds for _, _, ds, _ in items if ds is not None}, writer, errors is not None
    )
    rows: list[NewObservation | None] = []
    need_feature: dict[int, list[NewObservation]] = {}
    now = datetime.now(UTC)
    for index, (body, where, ds, feature) in enumerate(items):
        try:
            row, location = _observation_row(body, where, ds, feature, streams, now)
        except InvalidInput as exc:
            if errors is None:
                raise
            errors[index] = str(exc)
            rows.append(None)
            continue
        if location is not None:
            need_feature.setdefault(location, []).append(row)
        rows.append(row)
    if need_feature:
        features = features_of_locations(conn, need_feature)
        for location, waiting in need_feature.items():
            for row in waiting:
                row.feature_id = features[location]
    return rows


def _observation_row(
    body: dict[str, Any],
    where: str,
    ds: int | None,
    feature: int | None,
    streams: dict[int, tuple[str, int | None]],
    now: datetime,
) -> tuple[NewObservation, int | None]:
    """One Observation checked, and the Location its FeatureOfInterest is to come from."""
    if ds is None:
        raise InvalidInput(f"{where}: Datastream is missing")
    if ds not in streams:
        raise InvalidInput(f"{where}: Datastream {ds} does not exist")
    observation_type, location = streams[ds]
    if "result" not in body:
        raise InvalidInput(f"{where}: result is missing")
    number, other = check_result(body["result"], observation_type, where)
    start, end = (
        parse_interval(body["phenomenonTime"], f"{where}.phenomenonTime")
        if body.get("phenomenonTime") is not None
        else (now, None)
    )
    result_time = (
        parse_time(body["resultTime"], f"{where}.resultTime")
        if body.get("resultTime") is not None
        else None
    )
    valid_start, valid_end = (None, None)
    if body.get("validTime") is not None:
        valid_start, valid_end = parse_interval(body["validTime"], f"{where}.validTime")
        if valid_end is None:
            raise InvalidInput(f"{where}.validTime must be an interval start/end")
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput(f"{where}.parameters must be a JSON object")
    row = NewObservation(
        datastream_id=ds,
        phenomenon_start=start,
        phenomenon_end=end,
        result_time=result_time,
        result_number=number,
        result=other,
        feature_id=feature,
        result_quality=body.get("resultQuality"),
        valid_start=valid_start,
        valid_end=valid_end,
        parameters=parameters,
    )
    if feature is not None:
        return row, None
    if location is None:
        raise InvalidInput(
            f"{where}: no FeatureOfInterest given, and the Datastream's Thing has no "
            "Location to take it from"
        )
    return row, location


def _datastreams(
    conn: Connection, ids: set[int], writer: Writer, missing_ok: bool = False, lock: bool = True
) -> dict[int, tuple[str, int | None]]:
    """Observation type and Thing Location of each Datastream, locked against deletion until
    the transaction ends unless `lock` is off (those that do not exist are left out with
    `missing_ok`, else refused)."""
    # unpacked tuples from the driver's own statement: a batch names thousands, and reading
    # them by name through SQLAlchemy took a fifth of the bridge's time
    found = {
        ident: (kind, location, thing)
        for ident, kind, thing, location in conn.exec_driver_sql(
            """
            SELECT d.id, d.observation_type, d.thing_id,
                   (SELECT min(tl.location_id) FROM twin_thing_location tl
                    WHERE tl.thing_id = d.thing_id) AS location
            FROM twin_datastream d WHERE d.id = ANY(%(ids)s)"""
            + (" FOR KEY SHARE OF d" if lock else ""),
            {"ids": sorted(ids)},
        )
    }
    missing = sorted(ids - set(found))
    if missing and not missing_ok:
        raise InvalidInput(f"Datastream {', '.join(map(str, missing))} does not exist")
    if writer.role == "device":
        outside = sorted(d for d, (_, _, thing) in found.items() if thing not in writer.things)
        if outside:
            raise Forbidden(
                f"{writer.name} may not write Datastream {', '.join(map(str, outside))}: "
                "not of its Things"
            )
    elif writer.role != "manager":
        raise Forbidden(f"{writer.name} is a {writer.role} key: it may not write Observations")
    return {d: (t, loc) for d, (t, loc, _) in found.items()}


def _hold(conn: Connection, ids: set[int]) -> set[int]:
    """Lock Datastreams against deletion until the transaction ends; returns those that are
    still there (their types and the writer's rights were checked before)."""
    return set(
        conn.exec_driver_sql(
            "SELECT id FROM twin_datastream WHERE id = ANY(%(ids)s) ORDER BY id FOR KEY SHARE",
            {"ids": sorted(ids)},
        ).scalars()
    )


def features_of_locations(conn: Connection, need: Iterable[int]) -> dict[int, int]:
    """The FeatureOfInterest made from each Location (made now if there is none yet)."""
    ids = sorted(set(need))
    conn.execute(
        text("""
        INSERT INTO twin_feature (name, description, encoding_type, feature, geom, properties,
                                  location_id)
        SELECT l.name, l.description, l.encoding_type, l.location, l.geom, l.properties, l.id
        FROM twin_location l WHERE l.id = ANY(:ids)
        ON CONFLICT (location_id) DO NOTHING"""),
        {"ids": ids},
    )
    return dict(
        conn.execute(
            text("SELECT location_id, id FROM twin_feature WHERE location_id = ANY(:ids)"),
            {"ids": ids},
        ).all()
    )


def create_observations(
    engine: Engine,
    items: list[tuple[Any, str, int | None]],
    writer: Writer,
    errors: dict[int, str] | None = None,
) -> list[NewObservation | None]:
    """Store a batch of Observation bodies (body, where, Datastream id) in one transaction.
    Without `errors`, all of them or none (the first bad one raises); with it, the good ones
    (each bad one recorded there by its index, None in its place). Returns them as stored,
    with their ids, in order.

    Each body is checked once, before the transaction (which then only holds the Datastreams
    against deletion, finds features and writes), so that a batch of 100,000 spends its time
    in COPY, not in a transaction that waits on Python."""
    n = len(items)
    if n > MAX_BATCH:
        raise InvalidInput(f"{n} Observations in one request; at most {MAX_BATCH}")
    batch = _Checked(errors)
    streams = _writable_streams(engine, {ds for _, _, ds in items if ds is not None}, writer)
    now = datetime.now(UTC)
    for body, where, ds in items:
        try:
            checked = _object(body, where)
            _known_keys(SETS["Observations"], checked, where)
            feature = None
            foi = checked.get("FeatureOfInterest")
            if foi is not None:
                feature = _link_id(foi, f"{where}.FeatureOfInterest")
                if feature is None:
                    raise InvalidInput(
                        f"{where}: a new FeatureOfInterest cannot come in a "
                        "batch; link one by its @iot.id or leave it out"
                    )
            batch.add(*_observation_row(checked, where, ds, feature, streams, now), where)
        except InvalidInput as exc:
            batch.refuse(exc, where)
    return batch.write(engine)


class _Checked:
    """A batch of Observations as they are checked: each row (None where refused), where it
    came from, and the Location whose FeatureOfInterest it is to take."""

    def __init__(self, errors: dict[int, str] | None) -> None:
        self.errors = errors
        self.rows: list[NewObservation | None] = []
        self.wheres: list[str] = []
        self.locations: dict[int, int] = {}  # row index: Location

    def add(self, row: NewObservation, location: int | None, where: str) -> None:
        if location is not None:
            self.locations[len(self.rows)] = location
        self.rows.append(row)
        self.wheres.append(where)

    def refuse(self, exc: InvalidInput, where: str, index: int | None = None) -> None:
        """Refuse a row (the next one, or the one at `index`): the whole batch without
        `errors`."""
        if self.errors is None:
            raise exc
        if index is None:
            index = len(self.rows)
            self.rows.append(None)
            self.wheres.append(where)
        else:
            self.rows[index] = None
        self.errors[index] = str(exc)

    def write(self, engine: Engine) -> list[NewObservation | None]:
        """Store the rows that passed in one transaction, which holds their Datastreams
        against deletion and finds their FeaturesOfInterest; returns the rows."""
        rows = self.rows
        PARTITIONS.ensure(
            engine, [datetime.now(UTC), *(r.phenomenon_start for r in rows if r is not None)]
        )
        with engine.begin() as conn:
            held = _hold(conn, {r.datastream_id for r in rows if r is not None})
            if self.locations:
                features = features_of_locations(conn, set(self.locations.values()))
                for index, location in self.locations.items():
                    placed = rows[index]
                    if placed is not None:
                        placed.feature_id = features.get(location)
            missing = _missing_features(conn, {r.feature_id for r in rows if r is not None})
            for index, kept in enumerate(rows):
                if kept is None:
                    continue
                if kept.datastream_id not in held:
                    self.refuse(
                        InvalidInput(
                            f"{self.wheres[index]}: Datastream {kept.datastream_id} was "
                            "deleted while the batch was checked"
                        ),
                        self.wheres[index],
                        index,
                    )
                elif kept.feature_id is None or kept.feature_id in missing:
                    self.refuse(
                        InvalidInput(
                            f"{self.wheres[index]}: FeatureOfInterest {kept.feature_id} "
                            "does not exist"
                        ),
                        self.wheres[index],
                        index,
                    )
            observations.insert(conn, [r for r in rows if r is not None])
        return rows


def _writable_streams(
    engine: Engine, ids: set[int], writer: Writer
) -> dict[int, tuple[str, int | None]]:
    """The Datastreams a batch names that exist, checked for the writer (see `_datastreams`),
    read outside the batch's transaction."""
    with engine.connect() as conn:
        return _datastreams(conn, ids, writer, missing_ok=True, lock=False)


def _missing_features(conn: Connection, ids: set[int | None]) -> set[int]:
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return set()
    found = set(
        conn.execute(
            text("SELECT id FROM twin_feature WHERE id = ANY(:ids)"), {"ids": wanted}
        ).scalars()
    )
    return set(wanted) - found


DATA_ARRAY_COMPONENTS = {
    "id",
    "phenomenonTime",
    "result",
    "resultTime",
    "resultQuality",
    "validTime",
    "parameters",
    "FeatureOfInterest/id",
}
# rows with only these components are made without a dict each (a Data Array's usual shape)
_PLAIN_COMPONENTS = {"phenomenonTime", "result", "resultTime"}


def create_data_array(
    engine: Engine, body: Any, writer: Writer
) -> tuple[list[NewObservation | None], dict[int, str]]:
    """`POST /CreateObservations` (the Data Array extension): for each Datastream, components
    and rows of values. The rows that pass are stored in one transaction; a bad row is
    answered "error" (its reason in the errors, by its index among all rows), as the
    standard says. A body that is not a Data Array at all is refused whole. Returns the rows
    as stored, in order, and the errors."""
    groups = _data_array_groups(body)
    errors: dict[int, str] = {}
    batch = _Checked(errors)
    streams = _writable_streams(engine, {ds for _, ds, _, _ in groups}, writer)
    now = datetime.now(UTC)
    for where, ds, components, values in groups:
        if set(components) <= _PLAIN_COMPONENTS and ds in streams:
            _plain_rows(batch, where, ds, components, values, streams[ds], now)
            continue
        plain = "id" not in components and "FeatureOfInterest/id" not in components
        for j, row in enumerate(values):
            at = f"{where}.dataArray[{j}]"
            obs = dict(zip(components, row))  # noqa: B905 - the lengths were checked
            feature = None
            try:
                if not plain:
                    obs.pop("id", None)
                    if "FeatureOfInterest/id" in obs:
                        feature = _link_id(
                            {"@iot.id": obs.pop("FeatureOfInterest/id")},
                            f"{at}.FeatureOfInterest/id",
                        )
                batch.add(*_observation_row(obs, at, ds, feature, streams, now), at)
            except InvalidInput as exc:
                batch.refuse(exc, at)
    return batch.write(engine), errors


def _plain_rows(
    batch: _Checked,
    where: str,
    ds: int,
    components: list[str],
    values: list[list[Any]],
    stream: tuple[str, int | None],
    now: datetime,
) -> None:
    """A Data Array group of phenomenonTime, result and resultTime made into rows: the checks
    of `_observation_row`, without a dict a row."""
    observation_type, location = stream
    result_at = components.index("result")
    time_at = components.index("phenomenonTime") if "phenomenonTime" in components else None
    made_at = components.index("resultTime") if "resultTime" in components else None
    for j, row in enumerate(values):
        at = f"{where}.dataArray[{j}]"
        try:
            number, other = check_result(row[result_at], observation_type, at)
            when = None if time_at is None else row[time_at]
            start, end = (
                (now, None) if when is None else parse_interval(when, f"{at}.phenomenonTime")
            )
            made = None if made_at is None else row[made_at]
            result_time = None if made is None else parse_time(made, f"{at}.resultTime")
            if location is None:
                raise InvalidInput(
                    f"{at}: no FeatureOfInterest given, and the Datastream's Thing has no "
                    "Location to take it from"
                )
        except InvalidInput as exc:
            batch.refuse(exc, at)
            continue
        batch.add(NewObservation(ds, start, end, result_time, number, other, None), location, at)


def _data_array_groups(body: Any) -> list[tuple[str, int, list[str], list[list[Any]]]]:
    """A Data Array body's groups (where, Datastream, components, rows), checked for shape:
    anything wrong here refuses the whole request."""
    if not isinstance(body, list):
        raise InvalidInput(
            "CreateObservations: expected a JSON list of "
            '{"Datastream": {"@iot.id": N}, "components": [...], '
            '"dataArray": [[...]]}'
        )
    groups = []
    total = 0
    for i, group in enumerate(body):
        where = f"CreateObservations[{i}]"
        group = _object(group, where)
        ds = _link_id(group.get("Datastream"), f"{where}.Datastream")
        if ds is None:
            raise InvalidInput(f'{where}: Datastream {{"@iot.id": N}} is missing')
        components = group.get("components")
        if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
            raise InvalidInput(f"{where}: components must be a list of property names")
        unknown = [c for c in components if c not in DATA_ARRAY_COMPONENTS]
        if unknown:
            raise InvalidInput(
                f"{where}: unknown components {', '.join(unknown)}; they are "
                f"{', '.join(sorted(DATA_ARRAY_COMPONENTS))}"
            )
        if len(set(components)) != len(components):
            raise InvalidInput(f"{where}: a component is named twice in {components}")
        if "result" not in components:
            raise InvalidInput(f"{where}: components must include result")
        rows = group.get("dataArray")
        if not isinstance(rows, list):
            raise InvalidInput(f"{where}: dataArray must be a list of rows")
        count = group.get("dataArray@iot.count")
        if count is not None and count != len(rows):
            raise InvalidInput(
                f"{where}: dataArray@iot.count says {count}, the dataArray has {len(rows)} rows"
            )
        total += len(rows)
        if total > MAX_BATCH:
            raise InvalidInput(
                f"CreateObservations: more than {MAX_BATCH} rows in one request; "
                "send them in several"
            )
        width = len(components)
        for j, values in enumerate(rows):
            if type(values) is not list or len(values) != width:
                raise InvalidInput(
                    f"{where}.dataArray[{j}]: expected {width} values ({', '.join(components)})"
                )
        groups.append((where, ds, components, rows))
    return groups


# --- update and delete


def _entity_row(conn: Connection, s: EntitySet, ident: int) -> dict[str, Any]:
    row = (
        conn.execute(text(f"SELECT * FROM {s.table} WHERE id = :i FOR UPDATE"), {"i": ident})
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"{s.name}({ident}) does not exist")
    return dict(row)


def update(engine: Engine, path: ResourcePath, body: Any, writer: Writer, mode: str) -> int:
    """PATCH (`mode` "merge": the properties given change), JSON Patch ("patch": RFC 6902
    operations on the entity's JSON) or PUT ("replace": every writable property, the ones left
    out cleared). Returns the entity's id."""
    step = path.last
    s = step.set
    if step.id is None or len(path.steps) != 1:
        raise InvalidInput(f"{mode.upper()}: name one entity, e.g. {s.name}(1)")
    _require_manager(writer, f"change {s.name}")
    with engine.begin() as conn:
        row = _entity_row(conn, s, step.id)
        current = _current_json(conn, s, row)
        if mode == "patch":
            if not isinstance(body, list):
                raise InvalidInput("JSON Patch: expected a list of operations")
            try:
                new = jsonpatch.apply_patch(current, body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise InvalidInput(f"JSON Patch: {e}") from None
        elif mode == "replace":
            new = {k: v for k, v in _object(body, f"PUT {s.name}").items()}
        else:
            new = {**current, **_object(body, f"PATCH {s.name}")}
        _known_keys(s, new, f"{s.singular}({step.id})")
        _apply(conn, s, step.id, row, new, mode == "replace")
    return step.id


def _current_json(conn: Connection, s: EntitySet, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for prop in s.props[1:]:
        if prop.writable:
            if s.name == "Observations" or prop.kind != "interval":
                value = property_value(s, prop, row)
                if value is not None:
                    out[prop.name] = value
    return out


def _apply(
    conn: Connection,
    s: EntitySet,
    ident: int,
    row: dict[str, Any],
    new: dict[str, Any],
    replace_all: bool,
) -> None:
    where = f"{s.singular}({ident})"
    if s.name == "Observations":
        _update_observation(conn, ident, row, new, where)
        return
    sets: dict[str, Any] = {}
    casts: dict[str, str] = {}
    for prop in s.props[1:]:
        if not prop.writable:
            continue
        if prop.name not in new:
            if replace_all and prop.required:
                raise InvalidInput(f"{where}: PUT needs every property; {prop.name} is missing")
            if replace_all:
                sets[prop.column] = None
            continue
        value = new[prop.name]
        if prop.required and value is None:
            raise InvalidInput(f"{where}: {prop.name} cannot be null")
        if prop.kind == "text" and value is not None and not isinstance(value, str):
            raise InvalidInput(f"{where}: {prop.name} must be a text")
        if prop.name == "observationType":
            check_observation_type(value, where)
            if (
                value != row["observation_type"]
                and conn.execute(
                    text("SELECT 1 FROM twin_latest WHERE datastream_id = :d"), {"d": ident}
                ).first()
            ):
                raise InvalidInput(
                    f"{where}: observationType cannot change once it has Observations"
                )
        if prop.name == "unitOfMeasurement":
            check_unit(value, where)
        if prop.kind == "json" and prop.name == "properties" and value is not None:
            _object(value, f"{where}.properties")
        if prop.kind == "geometry":
            geometry = geojson_geometry(value, f"{where}.{prop.name}")
            sets["geom"] = _dump(geometry, where)
            casts["geom"] = "ST_SetSRID(ST_Force2D(ST_GeomFromGeoJSON(:geom)), 4326)"
        if prop.kind in ("json", "geometry"):
            sets[prop.column] = None if value is None else _dump(value, where)
            casts[prop.column] = f"CAST(:{prop.column} AS jsonb)"
        elif prop.kind == "time":
            sets[prop.column] = parse_time(value, f"{where}.{prop.name}")
        else:
            sets[prop.column] = value
    if s.name == "Things" and "properties" in new:
        city, obj = _city_object(conn, new.get("properties"), where)
        sets["city_code"], sets["object_id"] = city, obj
    if sets:
        assignments = ", ".join(f"{c} = {casts.get(c, ':' + c)}" for c in sets)
        conn.execute(
            text(f"UPDATE {s.table} SET {assignments} WHERE id = :ident"), {**sets, "ident": ident}
        )
    _relink(conn, s, ident, new, where)


def _relink(conn: Connection, s: EntitySet, ident: int, new: dict[str, Any], where: str) -> None:
    """Navigation properties in an update: a Datastream's Thing, Sensor or ObservedProperty,
    a Thing's Locations (by links)."""
    if s.name == "Datastreams":
        for nav in s.navs:
            if nav.many or nav.name not in new:
                continue
            target = _link_id(new[nav.name], f"{where}.{nav.name}")
            if target is None:
                raise InvalidInput(f"{where}.{nav.name}: link an existing one by @iot.id")
            table = SETS[nav.target].table
            if not conn.execute(
                text(f"SELECT 1 FROM {table} WHERE id = :i"), {"i": target}
            ).first():
                raise InvalidInput(f"{where}.{nav.name}: {nav.name} {target} does not exist")
            conn.execute(
                text(f"UPDATE twin_datastream SET {nav.parent_column} = :t WHERE id = :i"),
                {"t": target, "i": ident},
            )
    if s.name == "Things" and "Locations" in new:
        ids = []
        for i, item in enumerate(_children(new, "Locations", where)):
            loc = _link_id(item, f"{where}.Locations[{i}]")
            if loc is None:
                raise InvalidInput(f"{where}.Locations[{i}]: link an existing one by @iot.id")
            ids.append(loc)
        set_locations(conn, ident, ids)


def _update_observation(
    conn: Connection, ident: int, row: dict[str, Any], new: dict[str, Any], where: str
) -> None:
    observation_type = conn.execute(
        text("SELECT observation_type FROM twin_datastream WHERE id = :d"),
        {"d": row["datastream_id"]},
    ).scalar_one()
    changes: dict[str, Any] = {}
    if "result" in new:
        changes["result_number"], changes["result"] = check_result(
            new["result"], observation_type, where
        )
    if new.get("phenomenonTime") is not None:
        changes["phenomenon_start"], changes["phenomenon_end"] = parse_interval(
            new["phenomenonTime"], f"{where}.phenomenonTime"
        )
    if "resultTime" in new:
        changes["result_time"] = (
            None if new["resultTime"] is None else parse_time(new["resultTime"], where)
        )
    if "validTime" in new:
        changes["valid_start"], changes["valid_end"] = (
            (None, None)
            if new["validTime"] is None
            else parse_interval(new["validTime"], f"{where}.validTime")
        )
    for key, column in (("resultQuality", "result_quality"), ("parameters", "parameters")):
        if key in new:
            changes[column] = new[key]
    if changes:
        observations.update_one(conn, ident, changes)


def delete(engine: Engine, path: ResourcePath, writer: Writer) -> None:
    """Delete one entity and what cannot live without it: a Thing's Datastreams, a Sensor's or
    ObservedProperty's Datastreams, a Datastream's Observations."""
    step = path.last
    s = step.set
    if step.id is None or len(path.steps) != 1:
        raise InvalidInput(f"DELETE: name one entity, e.g. {s.name}(1)")
    _require_manager(writer, f"delete {s.name}")
    with engine.begin() as conn:
        _entity_row(conn, s, step.id)
        if s.name == "Observations":
            observations.delete(conn, "o.id = :i", {"i": step.id})
            return
        column = {
            "Things": "thing_id",
            "Sensors": "sensor_id",
            "ObservedProperties": "observed_property_id",
            "Datastreams": "id",
        }.get(s.name)
        if column:
            streams = (
                conn.execute(
                    text(f"SELECT id FROM twin_datastream WHERE {column} = :i FOR UPDATE"),
                    {"i": step.id},
                )
                .scalars()
                .all()
            )
            if streams:
                observations.delete(conn, "o.datastream_id = ANY(:ds)", {"ds": list(streams)})
        if (
            s.name == "FeaturesOfInterest"
            and conn.execute(
                text("SELECT 1 FROM twin_observation WHERE feature_id = :i LIMIT 1"), {"i": step.id}
            ).first()
        ):
            raise InvalidInput(
                f"FeaturesOfInterest({step.id}) still has Observations; delete them first"
            )
        conn.execute(text(f"DELETE FROM {s.table} WHERE id = :i"), {"i": step.id})
