"""OGC API Features (Part 1 Core, GeoJSON, OpenAPI 3.0; Part 2 CRS): one collection per city."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, cast
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse as _StdJSONResponse
from pyproj import Transformer
from pyproj.exceptions import ProjError
from sqlalchemy import Engine

from api import store
from api.dependencies import CrsParam, ItemsQuery, ScenarioParam, items_query
from api.limits import HeavyGate, worker_engine
from api.planning import parcel_collections
from api.properties import PropertyCache, feature_doc, queryables_doc, schema_doc
from cim.attributes import ITEMS_PARAMETERS, attribute_key
from cim.crs import OGC_CRS84, OGC_CRS84H, OutputCrs, parse_crs
from cim.db.scenarios import scheme_city
from cim.errors import InvalidCRS, InvalidInput
from cim.settings import ApiSettings
from twin.read import object_links as twin_links


class JSONResponse(_StdJSONResponse):
    """JSON rendered with orjson (feature pages are large: several times faster than json);
    geometries come as GeoJSON text from PostGIS, put in as they are (orjson.Fragment)."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # an integer beyond 64 bits in an attribute: written as its digits
            return orjson.dumps(_big_integers(content), option=orjson.OPT_NON_STR_KEYS)


def _big_integers(node: Any) -> Any:
    """`node` with every integer orjson cannot write (beyond 64 bits) as its JSON text."""
    if isinstance(node, dict):
        return {k: _big_integers(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_big_integers(v) for v in node]
    if isinstance(node, int) and not -(2**63) <= node < 2**64:
        return orjson.Fragment(str(node).encode())
    return node


GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas",
]
# CRSs every collection offers, besides the city's own
COMMON_CRS = [
    OGC_CRS84,
    OGC_CRS84H,
    "http://www.opengis.net/def/crs/EPSG/0/4326",
    "http://www.opengis.net/def/crs/EPSG/0/4979",
    "http://www.opengis.net/def/crs/EPSG/0/3857",
]
# metres (or feet) from a projected CRS's origin: beyond, no place on the Earth (false eastings
# with a zone prefix reach 4e7)
MAX_PROJECTED = 1e8
LONLAT = (-180.0, -90.0, 180.0, 90.0)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _crs_list(engine: Engine, city: str) -> list[str]:
    srid = store.city_crs_srid(engine, city)
    extra = [f"http://www.opengis.net/def/crs/EPSG/0/{srid}"] if srid else []
    return COMMON_CRS + [c for c in extra if c not in COMMON_CRS]


def _output_crs(engine: Engine, city: str, uri: str | None, what: str) -> OutputCrs:
    if uri is None:
        return OutputCrs.from_uri(OGC_CRS84)
    try:
        crs = OutputCrs.from_uri(uri)
    except InvalidCRS as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    if crs.uri not in _crs_list(engine, city):
        raise InvalidInput(f"{what} {uri!r} is not offered; use one of {_crs_list(engine, city)}")
    return crs


def collection_doc(engine: Engine, city: dict[str, Any], base: str) -> dict[str, Any]:
    """The collection description of a city."""
    code = city["code"]
    title = city["name_zh"] or city["name_en"] or code
    doc: dict[str, Any] = {
        "id": code,
        "title": title,
        "description": city["name_en"] or title,
        "itemType": "feature",
        "crs": _crs_list(engine, code),
        "storageCrs": OGC_CRS84H,
        "links": [
            {"href": f"{base}/collections/{code}", "rel": "self", "type": "application/json"},
            {
                "href": f"{base}/collections/{code}/items",
                "rel": "items",
                "type": GEOJSON,
                "title": "city objects",
            },
            {
                "href": f"{base}/collections/{code}/3dtiles/tileset.json",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/geodata",
                "type": "application/3dtiles+json",
                "title": "3D Tiles 1.1",
            },
            {
                "href": f"{base}/collections/{code}/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": SCHEMA_JSON,
            },
            {
                "href": f"{base}/collections/{code}/schema",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/schema",
                "type": SCHEMA_JSON,
                "title": "the features' properties and geometry, typed (Part 5)",
            },
            {
                "href": f"{base}/collections/{code}/schema/feature",
                # relation types are case-insensitive; GDAL 3.6 (Debian 12) knows only this spelling
                "rel": "describedBy",
                "type": SCHEMA_JSON,
                "title": "one GeoJSON feature of the items",
            },
        ],
    }
    # OGC API 3D GeoVolumes: the 3D content of the collection
    doc["content"] = [
        {
            "href": f"{base}/collections/{code}/3dtiles/tileset.json",
            "rel": "original",
            "type": "application/3dtiles+json",
            "title": "3D Tiles 1.1",
        }
    ]
    for scenario in city.get("scenarios", ()):  # its design schemes: the city as each sees it
        query = urlencode({"scenario": scenario})
        doc["links"].append(
            {
                "href": f"{base}/collections/{code}/items?{query}",
                "rel": "alternate",
                "type": GEOJSON,
                "title": f"city objects as design scheme {scenario!r} has them",
            }
        )
        doc["content"].append(
            {
                "href": f"{base}/collections/{code}/3dtiles/tileset.json?{query}",
                "rel": "alternate",
                "type": "application/3dtiles+json",
                "title": f"3D Tiles 1.1 of design scheme {scenario!r}",
            }
        )
    if city["bbox"]:
        spatial: dict[str, Any] = {"bbox": [city["bbox"]], "crs": OGC_CRS84}
        doc["extent"] = {"spatial": spatial}
    if city.get("crs"):
        doc["nativeCrs"] = city["crs"]
    return doc


@lru_cache(maxsize=64)
def _crs_area(srid: int) -> tuple[float, float, float, float] | None:
    """Where EPSG:`srid` is meant to be used, in its own x, y (easting, northing; lon, lat);
    None for a geographic CRS (its domain is the globe)."""
    crs = parse_crs(f"EPSG:{srid}")
    use = crs.area_of_use
    if crs.is_geographic or use is None:
        return None
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    try:
        x0, y0, x1, y1 = to_crs.transform_bounds(use.west, use.south, use.east, use.north, 21)
    except ProjError:
        return (-MAX_PROJECTED, -MAX_PROJECTED, MAX_PROJECTED, MAX_PROJECTED)
    return (x0, y0, x1, y1)


def _within_crs(
    bbox: tuple[float, float, float, float], srid: int
) -> tuple[float, float, float, float]:
    """A bbox (x, y order) as searched: lon/lat within the globe; projected coordinates within
    ±1e8 and then cut to the CRS's area of use (beyond it a projection has no meaning, and some
    fail: a transverse Mercator far off its meridian), so a box larger than the area finds all
    the area holds.

    Raises:
        InvalidInput: lon/lat off the globe, absurd coordinates, or a box outside the area.
    """
    area = _crs_area(srid)
    if area is None:
        west, south, east, north = LONLAT
        if bbox[0] < west or bbox[2] > east or bbox[1] < south or bbox[3] > north:
            raise InvalidInput("bbox: longitudes lie within -180..180, latitudes within -90..90")
        return bbox
    if max(abs(v) for v in bbox) > MAX_PROJECTED:
        raise InvalidInput(
            f"bbox {list(bbox)}: coordinates beyond ±{MAX_PROJECTED:,.0f} are no place on "
            f"the Earth in EPSG:{srid}"
        )
    cut = (
        max(bbox[0], area[0]),
        max(bbox[1], area[1]),
        min(bbox[2], area[2]),
        min(bbox[3], area[3]),
    )
    if cut[0] > cut[2] or cut[1] > cut[3]:
        raise InvalidInput(
            f"bbox {list(bbox)} lies outside the area of use of EPSG:{srid}, from "
            f"({area[0]:,.0f}, {area[1]:,.0f}) to ({area[2]:,.0f}, {area[3]:,.0f})"
        )
    return cut


def _item_query(
    engine: Engine, city: str, params: ItemsQuery, request: Request, cache: PropertyCache
) -> store.ItemQuery:
    """The search an items request asks for: page, output CRS, bbox, types, attribute filters
    (each compared as the type its property has in the city, see api.properties).

    Raises:
        InvalidInput: a parameter that is not valid, a filter on an unknown attribute, or a
            filter value that cannot be of its property's type.
    """
    q = store.ItemQuery(city=city, limit=params.limit, offset=params.offset, dataset=params.dataset)
    if params.scenario is not None:
        with engine.connect() as conn:
            q.scheme = scheme_city(conn, city, params.scenario)
    q.crs = _output_crs(engine, city, params.crs, "crs")
    if params.bbox is not None:
        try:
            values = [float(v) for v in params.bbox.split(",")]
        except ValueError:
            raise InvalidInput("bbox must be comma-separated numbers") from None
        q.bbox = store.check_bbox(values)
        bcrs = _output_crs(engine, city, params.bbox_crs, "bbox-crs")
        if bcrs.lat_first:
            q.bbox = (q.bbox[1], q.bbox[0], q.bbox[3], q.bbox[2])
        q.bbox_srid = 4326 if bcrs.uri in (OGC_CRS84, OGC_CRS84H) else bcrs.srid
        q.bbox = _within_crs(q.bbox, q.bbox_srid)
    elif params.bbox_crs is not None:
        raise InvalidInput("bbox-crs given without bbox")
    if params.type:
        q.types = [t.strip() for t in params.type.split(",") if t.strip()]
    filters = {k: v for k, v in request.query_params.items() if k not in ITEMS_PARAMETERS}
    if not filters:  # the city's types are read only for a filter
        return q
    known = cache.get(city).values()
    for name, value in filters.items():
        if name not in known:
            raise InvalidInput(
                f"unknown parameter {name!r}: filters must name an attribute of this "
                f"collection (see /collections/{city}/queryables)"
            )
        q.attributes[attribute_key(name)] = known[name].match(name, value)
    return q


TypesParam = Annotated[
    str | None,
    Query(description="only these city object types, comma-separated (as the items' type)"),
]


def _types(given: str | None) -> list[str] | None:
    """The object types a `type` parameter names (None: every type)."""
    if given is None:
        return None
    return sorted({t.strip() for t in given.split(",") if t.strip()})


def _page_links(
    request: Request, city: str, params: ItemsQuery, returned: int, matched: int, deepest: int
) -> list[dict[str, Any]]:
    """self and collection links of an items page, and next and prev where there are more (next
    only while its offset is at most `deepest`, the deepest a page may start at)."""
    base = f"{_base(request)}/collections/{city}/items"
    query = dict(request.query_params)
    links = [
        {
            "href": f"{base}?{urlencode(query)}" if query else base,
            "rel": "self",
            "type": GEOJSON,
        },
        {
            "href": f"{_base(request)}/collections/{city}",
            "rel": "collection",
            "type": "application/json",
        },
    ]
    offset, limit = params.offset, params.limit
    if offset + returned < matched and offset + limit <= deepest:
        links.append(
            {
                "href": f"{base}?{urlencode({**query, 'offset': offset + limit})}",
                "rel": "next",
                "type": GEOJSON,
            }
        )
    if offset > 0:
        links.append(
            {
                "href": f"{base}?{urlencode({**query, 'offset': max(offset - limit, 0)})}",
                "rel": "prev",
                "type": GEOJSON,
            }
        )
    return links


def page_features(db: Engine | str, q: store.ItemQuery) -> tuple[bytes, int, int]:
    """A page's features as a JSON array, how many, and how many match in all; `db` is an
    engine, or in a heavy worker process (see `HeavyGate.run`) the database's URL."""
    engine = worker_engine(db) if isinstance(db, str) else db
    features, matched = store.search_items(engine, q)
    return cast(bytes, JSONResponse(features).body), len(features), matched


def features_router(engine: Engine, settings: ApiSettings) -> APIRouter:
    """Routes of the Features API bound to `engine`."""
    router = APIRouter(tags=["Features"])
    cache = PropertyCache(engine)  # each city's property types, per generation of its data

    @router.get("/conformance", summary="Conformance classes this service implements")
    def conformance(request: Request) -> dict[str, Any]:
        # the application's: Features and the other APIs it serves (Processes)
        return {"conformsTo": getattr(request.app.state, "conformance", CONFORMANCE)}

    @router.get("/collections", summary="One collection per city, and its planning parcels")
    def collections(request: Request) -> dict[str, Any]:
        base = _base(request)
        return {
            "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
            "collections": [collection_doc(engine, c, base) for c in store.list_cities(engine)]
            + parcel_collections(engine, base),  # and each city's planning parcels
        }

    @router.get("/collections/{city}", summary="A city's collection")
    def collection(city: str, request: Request) -> dict[str, Any]:
        return collection_doc(engine, store.get_city(engine, city), _base(request))

    @router.get("/collections/{city}/types", summary="Object types in a city, with counts")
    def types(city: str) -> dict[str, Any]:
        store.require_city(engine, city)
        counts = store.type_counts(engine, city)
        return {"types": sorted(counts), "counts": counts}

    @router.get(
        "/collections/{city}/queryables",
        summary="Properties usable as filters, with their types",
        response_class=JSONResponse,
    )
    def queryables(city: str, request: Request) -> JSONResponse:
        # cache.get says 404 for a city that does not exist
        body = queryables_doc(
            cache.get(city), f"{_base(request)}/collections/{city}/queryables", city
        )
        return JSONResponse(body, media_type=SCHEMA_JSON)

    @router.get(
        "/collections/{city}/schema",
        summary="The features' properties and geometry, typed (OGC API Features Part 5)",
        response_class=JSONResponse,
    )
    def schema(city: str, request: Request, type: TypesParam = None) -> JSONResponse:
        # cache.get says 404 for a city that does not exist
        body = schema_doc(cache.get(city), _types(type), str(request.url), city)
        return JSONResponse(body, media_type=SCHEMA_JSON)

    @router.get(
        "/collections/{city}/schema/feature",
        summary="The JSON Schema of one GeoJSON feature of the items (the describedby link)",
        response_class=JSONResponse,
    )
    def feature_schema(city: str, request: Request, type: TypesParam = None) -> JSONResponse:
        # cache.get says 404 for a city that does not exist
        body = feature_doc(cache.get(city), _types(type), str(request.url), city)
        return JSONResponse(body, media_type=SCHEMA_JSON)

    # a default, not an Annotated alias: annotations are strings here, read in module scope
    read_items_query = Depends(items_query(settings))
    url = engine.url.render_as_string(hide_password=False)  # for heavy worker processes

    @router.get(
        "/collections/{city}/items",
        summary="City objects, filtered and paged",
        response_class=JSONResponse,
    )
    def items(city: str, request: Request, params: ItemsQuery = read_items_query) -> Response:
        # the city's existence is read with the page (one statement, see store.search_items),
        # and only asked first when a parameter is wrong: a missing city is still a 404
        try:
            q = _item_query(engine, city, params, request, cache)
        except InvalidInput:
            store.require_city(engine, city)
            raise
        if params.limit > settings.heavy_page:  # made in a heavy worker process, with its slot
            gate: HeavyGate = request.app.state.heavy
            features, returned, matched = gate.run(page_features, url, q)
        else:
            features, returned, matched = page_features(engine, q)
        links = _page_links(request, city, params, returned, matched, settings.max_offset)
        rest = orjson.dumps({"numberMatched": matched, "numberReturned": returned, "links": links})
        body = b'{"type":"FeatureCollection","features":' + features + b"," + rest[1:]
        return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{q.crs.uri}>"})

    @router.get(
        "/collections/{city}/items/{item_id:path}",
        summary="One city object",
        response_class=JSONResponse,
    )
    def item(
        city: str,
        item_id: str,
        request: Request,
        crs: CrsParam = None,
        scenario: ScenarioParam = None,
    ) -> JSONResponse:
        with engine.connect() as conn:  # the city, and the scheme when one is named
            scheme = scheme_city(conn, city, scenario)
        out = _output_crs(engine, city, crs, "crs")
        feature = store.get_item(engine, city, item_id, out, scheme)
        base = _base(request)
        self_query = f"?{urlencode({'scenario': scenario})}" if scheme else ""
        feature["links"] = [
            {
                "href": f"{base}/collections/{city}/items/{item_id}{self_query}",
                "rel": "self",
                "type": GEOJSON,
            },
            {"href": f"{base}/collections/{city}", "rel": "collection", "type": "application/json"},
        ]
        with engine.connect() as conn:  # the live twin's sensors on or in it
            feature["links"] += twin_links(conn, city, item_id, base)
        return JSONResponse(feature, media_type=GEOJSON, headers={"Content-Crs": f"<{out.uri}>"})

    return router
