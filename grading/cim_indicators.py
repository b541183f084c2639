"""Indicators the city model itself can evidence, computed in PostGIS.

Each result keeps the SQL that produced it, the parameters it ran with (including the metric CRS
and the area it covers) and the datasets (with their SHA-256) it read, so that anyone can run the
query again on the same data and get the same number.

Definitions (all distances and areas in a metric CRS: the UTM zone of the city's centre unless
the parameters name another):
- the area: the city's declared area (its administrative or built-up boundary, `grading.areas`);
  the three area-based indicators (`AREA_NAMES`) are not computed without one, and not over an
  area that holds none of the model's buildings (a wrong file or CRS);
- model_coverage: % of the area's grid cells (`cell_size_m`) holding the footprint
  centroid of at least one building with a 3D geometry (LoD 1 or more);
- lod2_share: % of buildings whose best geometry (their own or their parts') is LoD 2 or more;
- g5_density: 5G base stations in the built-up area per km²;
- g5_building_coverage: % of buildings whose footprint centroid is within `g5_radius_m` of a
  5G base station (horizontal distance);
- camera_coverage: % of the road surface within the coverage radius of a public-area camera
  (the camera's own radius attribute, else `camera_radius_m`);
- smart_light_ratio: % of street lights flagged smart;
- iot_density: IoT sensing nodes in the built-up area per km²;
- iot_twin_density: the same from the live twin: SensorThings Things with at least one
  Datastream whose Location lies in the area, per km² (the catalogue names it instead of
  iot_density when the city's sensors report to CIM);
- iot_reporting_share: % of those Things with an Observation in the `reporting_hours` (24) up to
  `as_of` (the time of the computation unless given; recorded, so that it can be rerun);
- cim_platform: not from the model: whether the city's platform offers the seven function
  groups of CJJ/T 315-2022 §4.3.2, each with evidence (`grading.platform`).
Which objects are stations, cameras, lights and sensors is an attribute test each, with defaults
that match CIM's demo city (e.g. `function = 5g_base_station`).
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from cim import __version__
from cim.db.cities import city_exists
from cim.errors import InvalidInput, NotFound


class Layer(BaseModel):
    """Objects whose attribute `attribute` has the value `value`."""

    model_config = ConfigDict(extra="forbid")
    attribute: str = "function"
    value: str


class Parameters(BaseModel):
    """What the computation needs to know about the city's data; every value is recorded."""

    model_config = ConfigDict(extra="forbid")
    metric_crs: int | None = Field(
        None, description="EPSG code of a projected CRS in metres; default: UTM zone of the centre"
    )
    cell_size_m: float = Field(100.0, ge=10, le=10_000)
    g5_radius_m: float = Field(300.0, gt=0, le=50_000)
    camera_radius_m: float = Field(50.0, gt=0, le=5_000)

    @field_validator("metric_crs")
    @classmethod
    def _metric(cls, code: int | None) -> int | None:
        if code is None:
            return None
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            crs = CRS.from_epsg(code)
        except CRSError:
            raise ValueError(f"EPSG:{code} is not a known CRS") from None
        units = {a.unit_name for a in crs.axis_info}
        if not crs.is_projected or units != {"metre"}:
            raise ValueError(f"EPSG:{code} is not a projected CRS in metres")
        return code

    camera_radius_attribute: str = "coverageRadius"
    camera_public_attribute: str | None = "publicArea"
    smart_attribute: str = "smart"
    building_types: list[str] = Field(default_factory=lambda: ["Building"])
    road_types: list[str] = Field(default_factory=lambda: ["Road"])
    g5: Layer = Layer(value="5g_base_station")
    camera: Layer = Layer(value="cctv_camera")
    street_light: Layer = Layer(value="street_light")
    iot: Layer = Layer(value="iot_sensor")
    as_of: datetime | None = Field(
        None, description="the twin's indicators count reports up to this time; default: now"
    )
    reporting_hours: float = Field(24.0, gt=0, le=24 * 366)


@dataclass(frozen=True)
class Area:
    """The area the area-based indicators cover: GeoJSON (lon/lat) and what to show about it."""

    geojson: str
    about: dict[str, Any]


@dataclass(frozen=True)
class Computed:
    """One computed indicator, with everything needed to recompute it."""

    name: str
    value: Any
    unit: str
    inputs: dict[str, Any]
    evidence: dict[str, Any]


TILE_M = 250.0  # the grid cells the road surface and camera discs are merged in
GRID_M = 1e-8  # their overlays snap to 10 nm: robust (no topology errors), and exact to mm²
STATEMENT_TIMEOUT_S = 300  # a runaway query (a huge area, a tiny cell) stops with an error
MODEL_NAMES = (
    "model_coverage",
    "lod2_share",
    "g5_density",
    "g5_building_coverage",
    "camera_coverage",
    "smart_light_ratio",
    "iot_density",
)
TWIN_NAMES = ("iot_twin_density", "iot_reporting_share")  # from the live twin (SensorThings)
AREA_NAMES = ("model_coverage", "g5_density", "iot_density")  # of the model
AREA_BASED = (*AREA_NAMES, *TWIN_NAMES)  # every indicator computed over the declared area
NAMES = (*MODEL_NAMES, *TWIN_NAMES, "cim_platform")  # what a catalogue may name

# The SQL below takes only bind parameters; the metric CRS is bound too (:srid).
_AREA = "SELECT ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:area), 4326), :srid) AS geom"
_IN_AREA = f"""WITH area AS ({_AREA})
SELECT count(*) FROM city_object o, area
 WHERE o.city_code = :city AND o.type = ANY(:building_types)
   AND ST_Intersects(ST_Transform(COALESCE(o.footprint, o.bbox), :srid), area.geom)"""

# a building's best LoD is the best of its own geometries and its parts': the parts are found
# by one join of all children (a hash join), not by a lookup per building
_BUILDINGS = """SELECT o.id,
       ST_Centroid(ST_Transform(COALESCE(o.footprint, o.bbox), :srid)) AS c,
       (SELECT max(l) FROM unnest(o.lods || COALESCE(parts.lods, '{}')) l) AS best_lod
  FROM city_object o
  LEFT JOIN (
    SELECT b.id, array_agg(l) AS lods
      FROM city_object b
      CROSS JOIN LATERAL unnest(b.children) AS child(source_id)
      JOIN city_object p ON p.city_code = b.city_code AND p.source_id = child.source_id
      CROSS JOIN LATERAL unnest(p.lods) AS l
     WHERE b.city_code = :city AND b.type = ANY(:building_types)
     GROUP BY b.id) parts ON parts.id = o.id
  WHERE o.city_code = :city AND o.type = ANY(:building_types)"""


def _points(layer: str) -> str:
    """SQL for the points of a layer (one per object: its first geometry's centroid)."""
    return f"""SELECT o.attributes,
       ST_Transform(ST_SetSRID(ST_Force2D(ST_Centroid(g.geom)), 4326), :srid) AS p
  FROM city_object o
  JOIN object_geometry g ON g.city_code = o.city_code AND g.object_id = o.id AND g.idx = 0
  WHERE o.city_code = :city AND o.attributes ->> :{layer}_attribute = :{layer}_value"""


# every CTE is MATERIALIZED: computed once, its transforms too; inlined, the planner joins all
# of a city's geometries before the attribute test that picks the stations (minutes, not ms)
QUERIES: dict[str, str] = {
    "model_coverage": f"""WITH area AS MATERIALIZED ({_AREA}),
cells AS MATERIALIZED (
  SELECT g.i, g.j FROM area, ST_SquareGrid(:cell_size_m, area.geom) g
  WHERE ST_Intersects(g.geom, area.geom)),
buildings AS MATERIALIZED ({_BUILDINGS})
SELECT (SELECT count(*) FROM cells) AS cells,
       (SELECT count(*) FROM cells WHERE (i, j) IN (
          SELECT floor(ST_X(c) / :cell_size_m)::int, floor(ST_Y(c) / :cell_size_m)::int
          FROM buildings WHERE best_lod >= '1')) AS covered,
       (SELECT ST_Area(geom) FROM area) AS area_m2""",
    "lod2_share": f"""WITH buildings AS MATERIALIZED ({_BUILDINGS})
SELECT count(*) AS buildings, count(*) FILTER (WHERE best_lod >= '2') AS lod2
  FROM buildings""",
    "g5_density": f"""WITH area AS MATERIALIZED ({_AREA}),
stations AS MATERIALIZED ({_points("g5")})
SELECT (SELECT count(*) FROM stations, area WHERE ST_Intersects(stations.p, area.geom))
         AS stations,
       (SELECT ST_Area(geom) FROM area) AS area_m2""",
    # stations and buildings meet in a grid of cells as wide as the radius: each building looks
    # for stations in its cell and the eight around it (a hash join, not buildings x stations)
    "g5_building_coverage": f"""WITH buildings AS MATERIALIZED ({_BUILDINGS}),
stations AS MATERIALIZED ({_points("g5")}),
station_cells AS MATERIALIZED (
  SELECT p, floor(ST_X(p) / :g5_radius_m)::bigint AS i, floor(ST_Y(p) / :g5_radius_m)::bigint AS j
  FROM stations),
building_cells AS MATERIALIZED (
  SELECT b.id, b.c, floor(ST_X(b.c) / :g5_radius_m)::bigint + di AS i,
         floor(ST_Y(b.c) / :g5_radius_m)::bigint + dj AS j
  FROM buildings b, (VALUES (-1), (0), (1)) x(di), (VALUES (-1), (0), (1)) y(dj)),
covered AS MATERIALIZED (
  SELECT DISTINCT bc.id FROM building_cells bc JOIN station_cells s USING (i, j)
  WHERE ST_DWithin(s.p, bc.c, :g5_radius_m))
SELECT (SELECT count(*) FROM buildings) AS buildings, (SELECT count(*) FROM covered) AS covered""",
    # the road surface and the cameras' discs are cut along a grid of :tile_m cells and merged
    # cell by cell (the polygons of each cut: an edge on a cell's side is no area): the same
    # areas, a partition adds up, without one city-wide union, which grows past minutes
    "camera_coverage": f"""WITH roads AS MATERIALIZED (
  SELECT ST_CollectionExtract(  -- its polygons: a degenerate ring made valid is a line
           ST_MakeValid(ST_Transform(ST_SetSRID(ST_Force2D(g.geom), 4326), :srid)), 3) AS geom
  FROM city_object o
  JOIN object_geometry g ON g.city_code = o.city_code AND g.object_id = o.id
   AND g.idx = COALESCE(o.display_idx, 0)
  WHERE o.city_code = :city AND o.type = ANY(:road_types)),
cameras AS MATERIALIZED ({_points("camera")}),
discs AS MATERIALIZED (
  SELECT ST_Buffer(p, COALESCE(
           CASE WHEN jsonb_typeof(attributes -> :camera_radius_attribute) = 'number'
                THEN (attributes ->> :camera_radius_attribute)::float8 END,
           :camera_radius_m), 8) AS geom
  FROM cameras
  WHERE CAST(:camera_public_attribute AS text) IS NULL
     OR attributes ->> :camera_public_attribute IN ('true', '1', 'yes')),
road_cells AS MATERIALIZED (
  SELECT i, j, ST_Union(ST_CollectionExtract(ST_Intersection(r.geom,
           ST_MakeEnvelope(i * :tile_m, j * :tile_m, (i + 1) * :tile_m, (j + 1) * :tile_m,
                           :srid), :grid_m), 3), :grid_m) AS geom
  FROM roads r,
       generate_series(floor(ST_XMin(r.geom) / :tile_m)::int,
                       floor(ST_XMax(r.geom) / :tile_m)::int) i,
       generate_series(floor(ST_YMin(r.geom) / :tile_m)::int,
                       floor(ST_YMax(r.geom) / :tile_m)::int) j
  GROUP BY i, j),
disc_cells AS MATERIALIZED (
  SELECT i, j, ST_Union(ST_CollectionExtract(ST_Intersection(d.geom,
           ST_MakeEnvelope(i * :tile_m, j * :tile_m, (i + 1) * :tile_m, (j + 1) * :tile_m,
                           :srid), :grid_m), 3), :grid_m) AS geom
  FROM discs d,
       generate_series(floor(ST_XMin(d.geom) / :tile_m)::int,
                       floor(ST_XMax(d.geom) / :tile_m)::int) i,
       generate_series(floor(ST_YMin(d.geom) / :tile_m)::int,
                       floor(ST_YMax(d.geom) / :tile_m)::int) j
  GROUP BY i, j)
SELECT (SELECT sum(ST_Area(geom)) FROM road_cells) AS road_m2,
       (SELECT sum(ST_Area(ST_Intersection(r.geom, d.geom, :grid_m)))
          FROM road_cells r JOIN disc_cells d USING (i, j)) AS seen_m2,
       (SELECT count(*) FROM discs) AS cameras""",
    "smart_light_ratio": f"""WITH lights AS MATERIALIZED ({_points("street_light")})
SELECT count(*) AS lights,
       count(*) FILTER (WHERE attributes ->> :smart_attribute IN ('true', '1', 'yes')) AS smart
  FROM lights""",
    "iot_density": f"""WITH area AS MATERIALIZED ({_AREA}),
sensors AS MATERIALIZED ({_points("iot")})
SELECT (SELECT count(*) FROM sensors, area WHERE ST_Intersects(sensors.p, area.geom))
         AS sensors,
       (SELECT ST_Area(geom) FROM area) AS area_m2""",
}


# the twin's sensors: Things with a Datastream, at a Location in the area
_TWIN_THINGS = f"""WITH area AS MATERIALIZED ({_AREA}),
things AS MATERIALIZED (
  SELECT DISTINCT t.id FROM twin_thing t
  JOIN twin_thing_location tl ON tl.thing_id = t.id
  JOIN twin_location l ON l.id = tl.location_id, area
  WHERE EXISTS (SELECT 1 FROM twin_datastream d WHERE d.thing_id = t.id)
    AND ST_Intersects(ST_Transform(l.geom, :srid), area.geom))"""
QUERIES["iot_twin_density"] = f"""{_TWIN_THINGS}
SELECT (SELECT count(*) FROM things) AS sensors, (SELECT ST_Area(geom) FROM area) AS area_m2"""
# a report: an Observation whose phenomenon time falls in the window (each Datastream's own
# index range), so that a rerun with the same as_of counts the same
QUERIES["iot_reporting_share"] = f"""{_TWIN_THINGS}
SELECT (SELECT count(*) FROM things) AS sensors,
       (SELECT count(*) FROM things th WHERE EXISTS (
          SELECT 1 FROM twin_datastream d JOIN twin_observation o ON o.datastream_id = d.id
          WHERE d.thing_id = th.id
            AND o.phenomenon_start > CAST(:as_of AS timestamptz)
                                     - make_interval(secs => :reporting_hours * 3600)
            AND o.phenomenon_start <= CAST(:as_of AS timestamptz))) AS reporting"""


def _binds(city: str, p: Parameters, srid: int, area: Area | None) -> dict[str, Any]:
    return {
        "city": city,
        "srid": srid,
        "area": None if area is None else area.geojson,
        "cell_size_m": p.cell_size_m,
        "g5_radius_m": p.g5_radius_m,
        "camera_radius_m": p.camera_radius_m,
        "tile_m": TILE_M,
        "grid_m": GRID_M,
        "camera_radius_attribute": p.camera_radius_attribute,
        "camera_public_attribute": p.camera_public_attribute,
        "smart_attribute": p.smart_attribute,
        "building_types": p.building_types,
        "road_types": p.road_types,
        "as_of": (p.as_of or datetime.now(UTC)).isoformat(timespec="seconds"),
        "reporting_hours": p.reporting_hours,
        **{
            f"{name}_{k}": getattr(getattr(p, name), k)
            for name in ("g5", "camera", "street_light", "iot")
            for k in ("attribute", "value")
        },
    }


def utm_epsg(lon: float, lat: float) -> int:
    """The WGS 84 UTM zone's EPSG code for a point."""
    zone = min(60, int(math.floor((lon + 180.0) / 6.0)) + 1)
    return (32600 if lat >= 0 else 32700) + zone


def _percent(part: float, whole: float) -> float | None:
    return None if not whole else round(100.0 * part / whole, 4)


def _per_km2(count: float, area_m2: float | None) -> float | None:
    return None if not area_m2 else round(count / (area_m2 / 1e6), 4)


def _value(name: str, r: dict[str, Any]) -> tuple[Any, str]:
    if name == "model_coverage":
        return _percent(r["covered"], r["cells"]), "%"
    if name == "lod2_share":
        return _percent(r["lod2"], r["buildings"]), "%"
    if name == "g5_density":
        return _per_km2(r["stations"], r["area_m2"]), "/km²"
    if name == "g5_building_coverage":
        return _percent(r["covered"], r["buildings"]), "%"
    if name == "camera_coverage":
        return _percent(r["seen_m2"] or 0.0, r["road_m2"] or 0.0), "%"
    if name == "smart_light_ratio":
        return _percent(r["smart"], r["lights"]), "%"
    if name == "iot_reporting_share":
        return _percent(r["reporting"], r["sensors"]), "%"
    assert name in ("iot_density", "iot_twin_density")
    return _per_km2(r["sensors"], r["area_m2"]), "/km²"


def _datasets(conn: Connection, city: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT name, checksum, object_count, imported_at FROM dataset "
            "WHERE city_code = :c ORDER BY name"
        ),
        {"c": city},
    ).all()
    return [
        {"name": r[0], "sha256": r[1], "objects": r[2], "imported_at": r[3].isoformat()}
        for r in rows
    ]


def compute(
    engine: Engine,
    city: str,
    params: Parameters | None = None,
    names: tuple[str, ...] = MODEL_NAMES,
    area: Area | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Computed]:
    """Compute indicators for a city in one read-only snapshot of the database; the area-based
    ones (`AREA_NAMES`) over `area`.

    Raises:
        NotFound: no such city, or a city without buildings. InvalidInput: an area-based
        indicator without an area, an area holding none of the buildings, a bad area, or an
        unknown indicator name.
    """
    p = params or Parameters()
    unknown = [n for n in names if n not in QUERIES]
    if unknown:
        known = ", ".join((*MODEL_NAMES, *TWIN_NAMES))
        raise InvalidInput(f"unknown model indicator(s) {unknown}; known: {known}")
    over_area = [n for n in names if n in AREA_BASED]
    if over_area and area is None:
        raise InvalidInput(
            f"{', '.join(over_area)} are computed over the city's declared area, and none was given"
        )
    with engine.connect() as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT_S * 1000)}"))
        centre = conn.execute(
            text(
                "SELECT ST_X(c), ST_Y(c), n FROM (SELECT ST_Centroid(ST_Extent(bbox)::geometry) c, "
                "count(*) n FROM city_object WHERE city_code = :c AND type = ANY(:t)) s"
            ),
            {"c": city, "t": p.building_types},
        ).first()
        if centre is None or centre[0] is None:
            raise NotFound(
                f"city {city!r} has no buildings in the model ({', '.join(p.building_types)})"
                if city_exists(conn, city)
                else f"no city {city!r} in the model"
            )
        srid = p.metric_crs or utm_epsg(centre[0], centre[1])
        datasets = _datasets(conn, city)
        binds = _binds(city, p, srid, area)
        if over_area and area is not None:
            inside = _run(conn, "area", _IN_AREA, binds).scalar_one()
            if not inside:
                raise InvalidInput(
                    f"the declared area ({area.about.get('file', 'given')}) holds none of the "
                    f"{centre[2]:,} buildings of city {city} in the model: is it this city's "
                    "boundary, in the CRS it names?"
                )
        # the area by what it is, not by its (possibly large) geometry: the file's SHA-256 and
        # that of the GeoJSON bound as :area, which the round serves to rerun the query
        about = None
        if area is not None:
            digest = hashlib.sha256(area.geojson.encode()).hexdigest()
            about = {**area.about, "geojson_sha256": digest}
        recorded = {**binds, "area": about}
        out = []
        for n, name in enumerate(names):
            if progress:
                progress(name, n, len(names))
            sql = QUERIES[name]
            row = _run(conn, name, sql, binds).mappings().one()
            inputs = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
            value, unit = _value(name, dict(row))
            evidence = {
                "indicator": name,
                "value": value,
                "unit": unit,
                "query": sql,
                "parameters": recorded if name in AREA_BASED else {**recorded, "area": None},
                "inputs": inputs,
                "model": {"city": city, "datasets": datasets},
                "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "cim_version": __version__,
            }
            out.append(Computed(name, value, unit, inputs, evidence))
    return out


def _run(conn: Connection, name: str, sql: str, binds: dict[str, Any]) -> Any:
    try:
        return conn.execute(text(sql), binds)
    except DBAPIError as exc:
        cause = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        if "GeoJSON" in cause:
            raise InvalidInput(f"the area is not a GeoJSON geometry ({cause})") from None
        if "statement timeout" in cause or "Interrupted" in cause:  # GEOS, stopped by it
            raise InvalidInput(
                f"{name}: stopped after {STATEMENT_TIMEOUT_S} s; use a larger cell size "
                f"or a smaller area"
            ) from None
        raise
