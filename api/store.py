"""Queries behind the Features API: plain functions over an engine, returning plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Engine, text

from api.paging import NOW, paging
from cim.attributes import published_name as property_name
from cim.crs import STORAGE_EPSG, OutputCrs, parse_crs
from cim.db import cities, scenarios
from cim.errors import InvalidCRS, InvalidInput, NotFound

_HIGHEST_LOD = """
LEFT JOIN LATERAL (
  SELECT g.geom FROM object_geometry g
  WHERE g.city_code = o.city_code AND g.object_id = o.id
  ORDER BY g.lod DESC NULLS LAST, g.idx LIMIT 1
) best ON true
"""


def _geojson(column: str, crs: OutputCrs) -> str:
    """SQL for a geometry column as GeoJSON text in `crs` (SRID is an int, never user text)."""
    expr = column if crs.srid == STORAGE_EPSG else f"ST_Transform({column}, {int(crs.srid)})"
    if crs.lat_first:
        expr = f"ST_FlipCoordinates({expr})"
    return f"ST_AsGeoJSON({expr}, 9, 0)"


_CITIES = """
    SELECT c.code, c.name_zh, c.name_en, c.crs,
           ST_XMin(e.ext), ST_YMin(e.ext), ST_XMax(e.ext), ST_YMax(e.ext), e.zmin, e.zmax, e.n,
           (SELECT coalesce(array_agg(s.scenario ORDER BY s.scenario), '{}')
            FROM city s WHERE s.base_city = c.code) AS scenarios
    FROM city c LEFT JOIN LATERAL (
      SELECT ST_Extent(o.bbox) AS ext, min(o.z_min) AS zmin, max(o.z_max) AS zmax,
             count(*) AS n
      FROM city_object o WHERE o.city_code = c.code) e ON true
    WHERE CAST(:code AS text) IS NULL AND c.base_city IS NULL OR c.code = :code
    ORDER BY c.code"""  # design schemes are listed with their city, not as cities


def _cities(engine: Engine, code: str | None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text(_CITIES), {"code": code}).all()
    return [
        {
            "code": r[0],
            "name_zh": r[1],
            "name_en": r[2],
            "crs": r[3],
            "bbox": None if r[4] is None else [r[4], r[5], r[6], r[7]],
            "zrange": None if r[8] is None else [r[8], r[9]],
            "objects": r[10],
            "scenarios": list(r[11]),
        }
        for r in rows
    ]


def list_cities(engine: Engine) -> list[dict[str, Any]]:
    """Every city with its extent (lon/lat) and object count."""
    return _cities(engine, None)


def get_city(engine: Engine, code: str) -> dict[str, Any]:
    """One city, as `list_cities` describes it.

    Raises:
        NotFound: no such city.
    """
    found = _cities(engine, code)
    if not found:
        raise NotFound(f"no city {code!r}")
    return found[0]


def require_city(engine: Engine, code: str) -> None:
    """Check that a city exists, without computing its extent.

    Raises:
        NotFound: no such city.
    """
    with engine.connect() as conn:
        cities.require_city(conn, code)


def city_crs_srid(engine: Engine, code: str) -> int | None:
    """The EPSG code of the city's native horizontal CRS when PostGIS knows it (for a compound
    CRS such as EPSG:7415 or EPSG:25832+5783, its horizontal part)."""
    with engine.connect() as conn:  # one connection for both questions
        crs = conn.execute(text("SELECT crs FROM city WHERE code = :c"), {"c": code}).scalar()
        srid = _horizontal_epsg(crs)
        if srid is None:
            return None
        known = conn.execute(_SRID_KNOWN, {"s": srid}).first() is not None
    return srid if known else None


_SRID_KNOWN = text("SELECT 1 FROM spatial_ref_sys WHERE srid = :s")


@lru_cache(maxsize=256)
def _horizontal_epsg(crs: str | None) -> int | None:
    """The EPSG code of a CRS's horizontal part (read by pyproj once per CRS name)."""
    if not crs or not crs.startswith("EPSG:"):
        return None
    try:
        parsed = parse_crs(crs)
    except InvalidCRS:
        return None
    horizontal = parsed.sub_crs_list[0] if parsed.is_compound else parsed
    srid: int | None = horizontal.to_epsg(min_confidence=90)
    return srid or None


def queryables(engine: Engine, code: str) -> list[str]:
    """Attribute names that the city's objects carry (the keys a filter may use)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT DISTINCT unnest(attribute_keys) FROM dataset WHERE city_code = :c"),
                {"c": code},
            )
            .scalars()
            .all()
        )
    return sorted(rows)


def type_counts(engine: Engine, code: str) -> dict[str, int]:
    """How many objects of each type a city has."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT type, count(*) FROM city_object WHERE city_code = :c GROUP BY type"),
            {"c": code},
        ).all()
    return {r[0]: int(r[1]) for r in rows}


def srid_known(engine: Engine, srid: int) -> bool:
    """True when PostGIS can transform to this SRID."""
    with engine.connect() as conn:
        return conn.execute(_SRID_KNOWN, {"s": srid}).first() is not None


@dataclass
class ItemQuery:
    """Filters and paging of an items request, already validated."""

    city: str
    limit: int
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_srid: int = 4326
    types: list[str] = field(default_factory=list)
    dataset: str | None = None
    # attribute key -> the JSON values (as text) any of which it must equal (api.properties)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    crs: OutputCrs = field(default_factory=lambda: OutputCrs.from_uri("OGC:CRS84"))
    # a design scheme's city (`{city}~{scenario}`, cim.db.scenarios): the city as it sees it
    scheme: str | None = None


_CITY_ONLY = "o.city_code = :city"


def _where(q: ItemQuery) -> tuple[str, dict[str, Any]]:
    # a scenario's objects are those of its view (cim.db.scenarios), of two cities
    clauses = ["true" if q.scheme else _CITY_ONLY]
    params: dict[str, Any] = {"city": q.city, "scheme": q.scheme}
    if q.bbox is not None:
        clauses.append(
            "o.bbox && ST_Transform(ST_MakeEnvelope(:x0, :y0, :x1, :y1, :bsrid), 4326)"
            if q.bbox_srid != 4326
            else "o.bbox && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
        )
        params.update(x0=q.bbox[0], y0=q.bbox[1], x1=q.bbox[2], y1=q.bbox[3], bsrid=q.bbox_srid)
    if q.types:
        clauses.append("o.type = ANY(:types)")
        params["types"] = q.types
    if q.dataset is not None:
        held = "o.city_code" if q.scheme else ":city"
        clauses.append(
            f"o.dataset_id = (SELECT id FROM dataset d WHERE d.city_code = {held}"  # noqa: S608
            " AND d.name = :dataset)"
        )
        params["dataset"] = q.dataset
    for n, (key, values) in enumerate(sorted(q.attributes.items())):
        # jsonb equality: numbers as numbers (23 = 23.0), strings as strings ("007" <> 7)
        clauses.append(f"o.attributes -> :k{n} = ANY(CAST(:v{n} AS jsonb[]))")
        params[f"k{n}"] = key
        params[f"v{n}"] = values
    return " AND ".join(clauses), params


def _feature(row: Any, geometries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # CIM's own properties, then each attribute at the top level (api.properties names them)
    props: dict[str, Any] = {
        "type": row.type,
        "dataset": row.dataset,
        "lods": row.lods,
        "parents": row.parents,
        "children": row.children,
    }
    if row.z_min is not None:
        props["height_min"] = row.z_min
        props["height_max"] = row.z_max
    props.update((property_name(k), v) for k, v in row.attributes.items())
    if geometries is not None:
        props["geometries"] = geometries
    return {
        "type": "Feature",
        "id": row.source_id,
        # GeoJSON text from PostGIS, written into the page as it is (not parsed and re-written)
        "geometry": orjson.Fragment(row.geometry) if row.geometry else None,
        "properties": props,
    }


# the ids of a page, in id order: of the whole city from a kept id (api.paging); of a filter,
# as the planner likes, or from the matching objects gathered first (see `_gathered`)
_CITY_PAGE = """
    SELECT o.id FROM city_object o WHERE o.city_code = :city AND o.id >= :start
    ORDER BY o.id LIMIT :limit OFFSET :skip"""
_FILTERED_PAGE = """
    SELECT o.id FROM city_object o WHERE {where} ORDER BY o.id LIMIT :limit OFFSET :offset"""
_GATHERED_PAGE = """
    WITH m AS MATERIALIZED (SELECT o.id FROM city_object o WHERE {where})
    SELECT id FROM m ORDER BY id LIMIT :limit OFFSET :offset"""
_NO_PAGE = "SELECT o.id FROM city_object o WHERE false"
# a page's rows and geometries, by the ids (fetched by key), with the city's generation read in
# the same statement (one row of NULLs when the page is empty)
_PAGE = """
    SELECT now.generation, now.city_exists, p.* FROM (SELECT {now}) now LEFT JOIN (
      SELECT o.id AS oid, o.source_id, o.type, o.lods, o.parents, o.children, o.attributes,
             o.z_min, o.z_max, d.name AS dataset, {geometry} AS geometry
      FROM city_object o JOIN dataset d ON d.city_code = o.city_code AND d.id = o.dataset_id
      {best}
      WHERE o.city_code = :city AND o.id = ANY(ARRAY({ids}))
    ) p ON true
    ORDER BY p.oid"""
# reads of a page again when the city's data changed under them, before one snapshot is taken
_ATTEMPTS = 3


def _gathered(matched: int, total: int, q: ItemQuery) -> bool:
    """Whether a filtered page is better made from its matching objects gathered first (by the
    filter's own index, then sorted) than by walking the city in id order until the page is
    full. The planner walks when it expects the matches spread over the ids, but a bbox's
    objects lie together (ids follow the files, and files follow places): a small bbox at the
    far end of the ids then walks most of the city (40-70 ms at 100,000 objects, where gathering
    takes 1-2 ms). Gathering costs about `matched`; walking about (offset + limit) x total /
    matched if spread, more if not: gather unless the matches are many (a quarter of a city of
    100,000 for a first page)."""
    return matched * matched < 16 * (q.offset + q.limit) * total


def search_items(engine: Engine, q: ItemQuery) -> tuple[list[dict[str, Any]], int]:
    """A page of features and the number matched in all.

    What api.paging keeps of the city (its order, the count of a filter) is used with a page
    only if the page's statement reads the generation it was kept for: so each answer is of one
    snapshot, in one statement when all is kept (no transaction: no BEGIN or ROLLBACK sent).

    Raises:
        NotFound: no such city.
    """
    if q.scheme is not None:
        return _scenario_items(engine, q)
    where, params = _where(q)
    kept = paging(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for _ in range(_ATTEMPTS):
            generation, order = kept.order(conn, q.city)
            if where == _CITY_ONLY:
                matched = order.total
                start, skip = order.start(q.offset)
                ids, extra = _CITY_PAGE, {"start": start, "skip": skip}
            else:
                counted, matched = kept.count(conn, q.city, generation, where, params)
                if counted != generation:  # the order kept is of older data
                    kept.forget(q.city, generation)
                    continue
                page = _GATHERED_PAGE if _gathered(matched, order.total, q) else _FILTERED_PAGE
                ids, extra = page.format(where=where), {"offset": q.offset}
            if q.offset >= matched:  # nothing to look for: only the generation is read
                ids = _NO_PAGE
            sql = _PAGE.format(
                now=NOW, geometry=_geojson("best.geom", q.crs), best=_HIGHEST_LOD, ids=ids
            )
            rows = conn.execute(text(sql), {**params, **extra, "limit": q.limit}).all()
            if _now_of(rows[0], q.city) == generation:
                return [_feature(r) for r in rows if r.oid is not None], matched
            kept.forget(q.city, generation)
    return _one_snapshot(engine, q)


def _now_of(row: Any, city: str) -> str:
    if not row.city_exists:
        raise NotFound(f"no city {city!r}")
    return str(row.generation)


def _one_snapshot(engine: Engine, q: ItemQuery) -> tuple[list[dict[str, Any]], int]:
    """A page and its count as `search_items` makes them, with nothing kept: for a city whose
    data keeps changing under the reads (and as the reference the tests compare with)."""
    where, params = _where(q)
    ids = _FILTERED_PAGE.format(where=where)
    sql = _PAGE.format(now=NOW, geometry=_geojson("best.geom", q.crs), best=_HIGHEST_LOD, ids=ids)
    count = text(f"SELECT count(*) FROM city_object o WHERE {where}")  # noqa: S608 - fixed SQL
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        rows = conn.execute(text(sql), {**params, "limit": q.limit, "offset": q.offset}).all()
        _now_of(rows[0], q.city)
        matched = conn.execute(count, params).scalar_one()
    return [_feature(r) for r in rows if r.oid is not None], int(matched)


# a page of a scenario's objects: the baseline's kept ones in id order, then the scheme's
_SCENARIO_PAGE = f"""
    SELECT o.id AS oid, o.city_code, o.source_id, o.type, o.lods, o.parents, o.children,
           o.attributes, o.z_min, o.z_max, d.name AS dataset, {{geometry}} AS geometry
    FROM ({scenarios.OBJECTS}) o JOIN dataset d ON d.city_code = o.city_code
         AND d.id = o.dataset_id
    {_HIGHEST_LOD}
    WHERE {{where}}
    ORDER BY o.city_code = :scheme, o.id LIMIT :limit OFFSET :offset"""  # noqa: S608 - fixed SQL
_SCENARIO_COUNT = f"SELECT count(*) FROM ({scenarios.OBJECTS}) o WHERE {{where}}"  # noqa: S608


def _scenario_items(engine: Engine, q: ItemQuery) -> tuple[list[dict[str, Any]], int]:
    """A page of the city as a design scheme sees it, and the number matched, of one snapshot;
    the scheme's objects say so (`scenario`). Nothing is kept: a scheme is looked at, not
    paged through by the million."""
    where, params = _where(q)
    sql = text(_SCENARIO_PAGE.format(geometry=_geojson("best.geom", q.crs), where=where))
    count = text(_SCENARIO_COUNT.format(where=where))
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        rows = conn.execute(sql, {**params, "limit": q.limit, "offset": q.offset}).all()
        matched = conn.execute(count, params).scalar_one()
    return [_scenario_feature(r, q.scheme) for r in rows], int(matched)


def _scenario_feature(
    row: Any, scheme: str | None, geometries: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    feature = _feature(row, geometries)
    if scheme is not None and row.city_code == scheme:  # an object of the scheme says so
        feature["properties"]["scenario"] = scheme.partition("~")[2]
    return feature


def get_item(
    engine: Engine, city: str, item_id: str, crs: OutputCrs, scheme: str | None = None
) -> dict[str, Any]:
    """One feature with every geometry (each LoD, its semantics and materials); with `scheme`,
    as that design scheme of the city has it (its own object in place of the baseline's).

    Raises:
        NotFound: no such object in the city (or in the scenario's view of it).
    """
    sql = text(f"""
        SELECT o.id AS oid, o.city_code, o.source_id, o.type, o.lods, o.parents, o.children,
               o.attributes, o.extra, o.z_min, o.z_max, d.name AS dataset,
               {_geojson("best.geom", crs)} AS geometry
        FROM {f"({scenarios.OBJECTS})" if scheme else "city_object"} o
        JOIN dataset d ON d.city_code = o.city_code AND d.id = o.dataset_id
        {_HIGHEST_LOD}
        WHERE o.source_id = :sid {"" if scheme else "AND o.city_code = :city"}""")  # noqa: S608
    geoms = text(f"""
        SELECT g.idx, g.lod, g.type, g.structure, {_geojson("g.geom", crs)} AS geometry
        FROM object_geometry g WHERE g.city_code = :held AND g.object_id = :oid
        ORDER BY g.idx""")  # noqa: S608 - fixed SQL
    with engine.connect() as conn:
        row = conn.execute(sql, {"city": city, "scheme": scheme, "sid": item_id}).first()
        if row is None:
            where = f"scenario {scheme.partition('~')[2]!r} of city" if scheme else "city"
            raise NotFound(f"no object {item_id!r} in {where} {city!r}")
        parts = conn.execute(geoms, {"held": row.city_code, "oid": row.oid}).all()
    geometries = []
    for p in parts:
        structure = dict(p.structure)
        structure.pop("surface_types", None)
        geometries.append(
            {
                "lod": p.lod,
                "type": p.type,
                "geometry": orjson.loads(p.geometry) if p.geometry else None,
                **{k: v for k, v in structure.items() if k not in ("type", "lod")},
            }
        )
    feature = _scenario_feature(row, scheme, geometries)
    if row.extra:
        feature["properties"]["extra"] = row.extra
    return feature


def check_bbox(values: list[float]) -> tuple[float, float, float, float]:
    """A bbox of 4 or 6 numbers as (minx, miny, maxx, maxy).

    Raises:
        InvalidInput: wrong count, order or non-finite.
    """
    import math

    if len(values) not in (4, 6) or not all(math.isfinite(v) for v in values):
        raise InvalidInput("bbox must be 4 or 6 finite numbers: minx,miny,maxx,maxy")
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if values[0] > values[2] or values[1] > values[3]:
        raise InvalidInput("bbox minimum must not exceed maximum")
    return values[0], values[1], values[2], values[3]
