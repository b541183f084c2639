"""A picture of the model for a planning analysis's paper: the plan (top view) of the area the
analysis looked at, as SVG, drawn from the model itself: every object's footprint (grey), the
parcels (blue outlines), what the analysis found marked on it (buildings above their limit in
red, window points coloured by their hours of sun), a scale bar and a north arrow."""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)

from __future__ import annotations

import math
from html import escape
from typing import Any

from sqlalchemy import Connection, text

from analysis.model import OBJECTS

WIDTH, HEIGHT = 680.0, 480.0
MARGIN_M = 40.0
MAX_OBJECTS = 20_000

_FOOTPRINTS = f"""
SELECT o.source_id, o.type, ST_AsGeoJSON(o.footprint, 8) AS geom
FROM ({OBJECTS}) o
WHERE o.footprint IS NOT NULL AND o.bbox && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
LIMIT {MAX_OBJECTS}
"""

_PARCELS = """
SELECT coalesce(p.code, CAST(p.id AS text)) AS code, ST_AsGeoJSON(p.geom, 8) AS geom
FROM planning_parcel p
WHERE p.city_code = :city AND p.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
"""

_EXTENT = f"""
SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (
  SELECT ST_Extent(g) AS e FROM (
    SELECT p.geom AS g FROM planning_parcel p
    WHERE p.city_code = :city
      AND coalesce(p.code, CAST(p.id AS text)) = ANY (CAST(:parcels AS text[]))
    UNION ALL
    SELECT o.footprint FROM ({OBJECTS}) o WHERE o.source_id = ANY (CAST(:ids AS text[]))
  ) x) y
"""


def _ramp(hours: float, need: float) -> str:
    """Red under the rule, then yellow to green as the hours grow."""
    if hours < need:
        return "#d7191c"
    f = min(1.0, (hours - need) / max(need, 1.0))
    r, g = int(250 - 150 * f), int(200 + 20 * f)
    return f"#{r:02x}{g:02x}3c"


def _focus(results: dict[str, Any], process: str) -> tuple[list[str], list[str], list[Any]]:
    """The parcels and buildings the analysis is about, and its window points."""
    if process == "parcel-indicators":
        return [p["code"] or str(p["parcel"]) for p in results["parcels"]], [], []
    if process == "height-limits":
        parcels = {b["parcel_code"] or str(b["parcel"]) for b in results["breaches"] if b["parcel"]}
        return sorted(parcels), [b["building"] for b in results["breaches"]], []
    if process == "sunlight":
        buildings = sorted({p["building"] for p in results["points"] if "building" in p})
        return [], buildings, results["points"]
    if process == "scheme-comparison":
        return list(results["parcels"]), list(results["neighbours"]), []
    return [], [], []


def plan_svg(
    conn: Connection, process: str, inputs: dict[str, Any], results: dict[str, Any]
) -> str:
    """The picture, as an SVG document (an empty string when there is nothing to draw)."""
    city = inputs["city"]
    scheme = None
    if inputs.get("scenario"):
        scheme = conn.execute(
            text("SELECT code FROM city WHERE base_city = :c AND scenario = :s"),
            {"c": city, "s": inputs["scenario"]},
        ).scalar()
    parcels, ids, points = _focus(results, process)
    binds = {"city": city, "scheme": scheme, "parcels": parcels, "ids": ids}
    extent = conn.execute(text(_EXTENT), binds).first()
    lons = [p["lon"] for p in points]
    lats = [p["lat"] for p in points]
    if extent is not None and extent[0] is not None:
        lons += [extent[0], extent[2]]
        lats += [extent[1], extent[3]]
    if not lons:
        return ""
    lat0 = (min(lats) + max(lats)) / 2
    kx = 111_320.0 * math.cos(math.radians(lat0))
    ky = 110_574.0
    pad_x, pad_y = MARGIN_M / kx, MARGIN_M / ky
    x0, x1 = min(lons) - pad_x, max(lons) + pad_x
    y0, y1 = min(lats) - pad_y, max(lats) + pad_y
    span_m = max((x1 - x0) * kx / WIDTH, (y1 - y0) * ky / HEIGHT)  # metres per pixel

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return (lon - x0) * kx / span_m, HEIGHT - (lat - y0) * ky / span_m

    def path(geojson: str) -> str:
        import orjson

        g = orjson.loads(geojson)
        polygons = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        parts = []
        for poly in polygons:
            for ring in poly:
                pts = " L".join(f"{a:.1f},{b:.1f}" for a, b in (xy(*p[:2]) for p in ring))
                parts.append(f"M{pts} Z")
        return " ".join(parts)

    area = {"x0": x0, "y0": y0, "x1": x1, "y1": y1}
    marked = set(ids) if process == "height-limits" else set()
    focus = set(ids)
    shapes = []
    for r in conn.execute(text(_PARCELS), {**binds, **area}):
        shapes.append(
            f'<path d="{path(r.geom)}" fill="#dbeafe" fill-opacity="0.35" stroke="#2563eb" '
            f'stroke-width="1.2" stroke-dasharray="5 3"><title>{escape(r.code)}</title></path>'
        )
    for r in conn.execute(text(_FOOTPRINTS), {**binds, **area}):
        fill = (
            "#ef4444" if r.source_id in marked else "#9ca3af" if r.source_id in focus else "#d1d5db"
        )
        shapes.append(
            f'<path d="{path(r.geom)}" fill="{fill}" stroke="#4b5563" stroke-width="0.5">'
            f"<title>{escape(r.source_id)}</title></path>"
        )
    need = float(results.get("rule", {}).get("min_hours", 0)) if process == "sunlight" else 0.0
    for p in points:
        a, b = xy(p["lon"], p["lat"])
        shapes.append(
            f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.2" fill="{_ramp(p["hours"], need)}" '
            'stroke="#111827" stroke-width="0.3"/>'
        )
    bar_m = _nice(span_m * WIDTH / 5)
    bar_px = bar_m / span_m
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" class="plan" '
        f'viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" width="{WIDTH:.0f}" height="{HEIGHT:.0f}">'
        f'<rect width="100%" height="100%" fill="#f9fafb"/>{"".join(shapes)}'
        f'<g transform="translate(16,{HEIGHT - 18:.0f})"><rect width="{bar_px:.1f}" height="5" '
        f'fill="#111827"/><text y="-4" font-size="11">{bar_m:g} m</text></g>'
        f'<g transform="translate({WIDTH - 26:.0f},30)"><path d="M0,-18 L7,6 L0,1 L-7,6 Z" '
        'fill="#111827"/><text x="-4" y="20" font-size="11">N</text></g></svg>'
    )


def _nice(metres: float) -> float:
    """A round length near `metres` (1, 2 or 5 times a power of ten)."""
    power = 10 ** math.floor(math.log10(max(metres, 1e-9)))
    return next(m * power for m in (5, 2, 1) if m * power <= metres)
