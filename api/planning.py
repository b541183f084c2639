"""A city's planning parcels as their own Features API collection, `{city}-parcels`: polygons in
CRS84 with their limits (land use, height limit, FAR, density, green ratio) as typed properties
and every source field beside them, paged and filtered by bbox and land use."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Engine, text

from cim.crs import OGC_CRS84
from cim.errors import InvalidInput, NotFound

GEOJSON = "application/geo+json"
SUFFIX = "-parcels"
MAX_LIMIT = 10_000

_COLLECTIONS = """
SELECT c.code, c.name_zh, c.name_en, count(*) AS parcels,
       ST_XMin(ST_Extent(p.geom)) AS x0, ST_YMin(ST_Extent(p.geom)) AS y0,
       ST_XMax(ST_Extent(p.geom)) AS x1, ST_YMax(ST_Extent(p.geom)) AS y1
FROM planning_parcel p JOIN city c ON c.code = p.city_code
WHERE CAST(:city AS text) IS NULL OR p.city_code = :city
GROUP BY c.code ORDER BY c.code
"""

KNOWN = ("code", "land_use", "height_limit", "far_limit", "density_limit", "green_ratio")
_COLUMNS = (
    "p.id, ST_AsGeoJSON(p.geom, 9) AS geometry, p.code, p.land_use, p.height_limit, "
    "p.far_limit, p.density_limit, p.green_ratio, p.area, p.source_id, d.name AS dataset, "
    "p.attributes"
)

_MATCHING = """
WHERE p.city_code = :city
  AND (CAST(:x0 AS float8) IS NULL
       OR p.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))
  AND (CAST(:land_use AS text) IS NULL OR p.land_use = :land_use)
"""

_ITEMS = f"""
SELECT {_COLUMNS}, count(*) OVER () AS matched
FROM planning_parcel p JOIN dataset d ON d.city_code = p.city_code AND d.id = p.dataset_id
{_MATCHING}
ORDER BY p.id LIMIT :limit OFFSET :offset
"""  # noqa: S608 (constant text; every value is a bind parameter)

_COUNT = f"SELECT count(*) FROM planning_parcel p {_MATCHING}"  # noqa: S608 (constant text)

_ITEM = f"""
SELECT {_COLUMNS}
FROM planning_parcel p JOIN dataset d ON d.city_code = p.city_code AND d.id = p.dataset_id
WHERE p.city_code = :city AND CAST(p.id AS text) = :id
"""  # noqa: S608 (constant text; every value is a bind parameter)


def _feature(row: Any) -> dict[str, Any]:
    """A parcel as a GeoJSON feature: its limits as read, then every source field as it was
    (one named as a limit's key is given as `source:NAME`, so that neither hides the other)."""
    properties: dict[str, Any] = {k: row[k] for k in KNOWN}
    properties.update(area_m2=row["area"], source_id=row["source_id"], dataset=row["dataset"])
    for name, value in row["attributes"].items():
        properties[f"source:{name}" if name in properties else name] = value
    return {
        "type": "Feature",
        "id": row["id"],
        "geometry": orjson.Fragment(row["geometry"].encode()),
        "properties": properties,
    }


def _doc(row: Any, base: str) -> dict[str, Any]:
    cid = f"{row['code']}{SUFFIX}"
    name = row["name_zh"] or row["name_en"] or row["code"]
    return {
        "id": cid,
        "title": f"{name} 控规地块 (planning parcels)",
        "description": f"the planning parcels of {row['name_en'] or name}, with their limits",
        "itemType": "feature",
        "crs": [OGC_CRS84],
        "storageCrs": OGC_CRS84,
        "extent": {
            "spatial": {"bbox": [[row["x0"], row["y0"], row["x1"], row["y1"]]], "crs": OGC_CRS84}
        },
        "links": [
            {"href": f"{base}/collections/{cid}", "rel": "self", "type": "application/json"},
            {
                "href": f"{base}/collections/{cid}/items",
                "rel": "items",
                "type": GEOJSON,
                "title": "parcels",
            },
            {
                "href": f"{base}/collections/{row['code']}",
                "rel": "related",
                "type": "application/json",
                "title": "the city's objects",
            },
        ],
    }


def parcel_collections(engine: Engine, base: str, city: str | None = None) -> list[dict[str, Any]]:
    """The parcel collection of each city that has parcels (of `city` alone, when given)."""
    with engine.connect() as conn:
        rows = conn.execute(text(_COLLECTIONS), {"city": city}).mappings().all()
    return [_doc(r, base) for r in rows]


def _bbox(given: str | None) -> tuple[float, ...] | None:
    if given is None:
        return None
    try:
        parts = tuple(float(v) for v in given.split(","))
    except ValueError:
        raise InvalidInput(f"bbox {given!r} is four numbers: west,south,east,north") from None
    if len(parts) != 4 or not (parts[0] <= parts[2] and parts[1] <= parts[3]):
        raise InvalidInput(f"bbox {given!r} is four numbers: west,south,east,north")
    return parts


_SCENARIOS = """
SELECT c.scenario, c.code,
       (SELECT coalesce(array_agg(s.source_id ORDER BY s.source_id), '{}') FROM city_object s
        WHERE s.city_code = c.code AND EXISTS (
            SELECT 1 FROM city_object b WHERE b.city_code = :city AND b.source_id = s.source_id))
         AS replaces,
       (SELECT count(*) FROM city_object s WHERE s.city_code = c.code) AS objects
FROM city c WHERE c.base_city = :city ORDER BY c.scenario
"""


def planning_doc(engine: Engine, city: str) -> dict[str, Any]:
    """What the viewer's planning tools need of a city: its design schemes (each with the
    baseline objects it replaces, to hide beside it), whether it has parcels, and the
    standard days of this year (大寒, 冬至) in China's calendar."""
    from datetime import date

    from analysis.sun import term_of

    with engine.connect() as conn:
        if (
            conn.execute(
                text("SELECT 1 FROM city WHERE code = :c AND base_city IS NULL"), {"c": city}
            ).first()
            is None
        ):
            raise NotFound(f"no city {city!r}")
        rows = conn.execute(text(_SCENARIOS), {"city": city}).mappings().all()
        parcels = conn.execute(
            text("SELECT count(*) FROM planning_parcel WHERE city_code = :c"), {"c": city}
        ).scalar_one()
        ground = conn.execute(
            text("SELECT min(z_min) FROM city_object WHERE city_code = :c"), {"c": city}
        ).scalar()
    year = date.today().year
    return {
        "city": city,
        "parcels": parcels,
        "ground": ground,  # the lowest point of its objects, ellipsoidal metres
        "scenarios": [
            {
                "scenario": r["scenario"],
                "collection": r["code"],
                "objects": r["objects"],
                "replaces": list(r["replaces"]),
            }
            for r in rows
        ],
        "days": {
            "大寒": term_of("大寒", year).isoformat(),
            "冬至": term_of("冬至", year).isoformat(),
        },
    }


def planning_router(engine: Engine) -> APIRouter:
    """Routes of the parcel collections bound to `engine` (included before the city
    collections', whose `/collections/{city}` would take `{city}-parcels` too)."""
    router = APIRouter(tags=["Features"])

    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def _require_parcels(city: str) -> None:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM planning_parcel WHERE city_code = :c LIMIT 1"), {"c": city}
            ).first()
        if found is None:
            raise NotFound(f"city {city!r} has no planning parcels")

    @router.get("/planning/{city}", summary="A city's design schemes, parcels and standard days")
    def planning(city: str) -> Response:
        return Response(orjson.dumps(planning_doc(engine, city)), media_type="application/json")

    @router.get(f"/collections/{{city}}{SUFFIX}", summary="A city's planning parcels")
    def collection(city: str, request: Request) -> Response:
        found = parcel_collections(engine, _base(request), city)
        if not found:
            raise NotFound(f"city {city!r} has no planning parcels")
        return Response(orjson.dumps(found[0]), media_type="application/json")

    @router.get(f"/collections/{{city}}{SUFFIX}/items", summary="Planning parcels, paged")
    def items(
        city: str,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        bbox: Annotated[str | None, Query(description="west,south,east,north (CRS84)")] = None,
        land_use: Annotated[str | None, Query(description="only parcels of this land use")] = None,
    ) -> Response:
        try:
            box = _bbox(bbox)
        except InvalidInput:  # a city without parcels is a 404 whatever else is wrong
            _require_parcels(city)
            raise
        binds = dict(zip(("x0", "y0", "x1", "y1"), box or (None,) * 4, strict=True))
        with engine.connect() as conn:
            rows = conn.execute(
                text(_ITEMS),
                {**binds, "city": city, "limit": limit, "offset": offset, "land_use": land_use},
            ).all()
        if not rows:
            _require_parcels(city)
        matched = int(rows[0].matched) if rows else 0
        if not rows and offset:  # past the end: how many there are all the same
            with engine.connect() as conn:
                matched = conn.execute(
                    text(_COUNT),
                    {**binds, "city": city, "land_use": land_use},
                ).scalar_one()
        base = f"{_base(request)}/collections/{city}{SUFFIX}/items"
        query = dict(request.query_params)
        links = [
            {
                "href": f"{base}?{urlencode(query)}" if query else base,
                "rel": "self",
                "type": GEOJSON,
            }
        ]
        if offset + len(rows) < matched:
            links.append(
                {
                    "href": f"{base}?{urlencode({**query, 'offset': offset + limit})}",
                    "rel": "next",
                    "type": GEOJSON,
                }
            )
        body = (
            b'{"type":"FeatureCollection","features":['
            + b",".join(orjson.dumps(_feature(r._mapping)) for r in rows)
            + b"],"
            + orjson.dumps({"numberMatched": matched, "numberReturned": len(rows), "links": links})[
                1:
            ]
        )
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{OGC_CRS84}>"})

    @router.get(f"/collections/{{city}}{SUFFIX}/items/{{parcel}}", summary="One planning parcel")
    def item(city: str, parcel: str, request: Request) -> Response:
        with engine.connect() as conn:
            row = conn.execute(text(_ITEM), {"city": city, "id": parcel}).mappings().first()
        if row is None:
            raise NotFound(f"no parcel {parcel!r} in city {city!r}")
        feature = _feature(row)
        base = f"{_base(request)}/collections/{city}{SUFFIX}"
        feature["links"] = [
            {"href": f"{base}/items/{parcel}", "rel": "self", "type": GEOJSON},
            {"href": base, "rel": "collection", "type": "application/json"},
        ]
        return Response(
            orjson.dumps(feature), media_type=GEOJSON, headers={"Content-Crs": f"<{OGC_CRS84}>"}
        )

    return router
