"""The demo city's planning layer: one regulatory parcel (控规地块) per built block of the demo
city's street grid, with the limits a 控规 sets, under the Chinese field names such layers use.

The parcels follow the same plan as `demo.city` (the same seed gives the same grid), each a
block less 3 m along its streets. Their limits fall with the distance from the centre, as the
buildings' heights do, but the generator of the buildings knows nothing of them: some
buildings are taller, and some blocks denser, than their parcel allows, as in a real city
whose plan came after much of it was built.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from demo.city import DEMO_EPSG, city_header
from demo.shapes import plan_city

# by zone (as demo.city's): land use, height limit (m), FAR, density (%), green ratio (%)
_LIMITS = {
    "core": ("B1", 120.0, 4.5, 45.0, 25.0),
    "middle": ("R2", 60.0, 2.8, 30.0, 30.0),
    "outer": ("R2", 36.0, 1.8, 28.0, 35.0),
}
_USE_NAMES = {"B1": "商业用地", "R2": "二类居住用地"}
STREET_SETBACK_M = 3.0


def write_parcels(path: Path, buildings: int = 3000, seed: int = 42) -> int:
    """Write the demo city's parcels as GeoJSON (EPSG:4548) to `path`; returns how many."""
    plan = plan_city(buildings, random.Random(seed))  # the first draws of demo.city's own
    header = city_header(plan, buildings, seed)
    tx, ty, _ = header["transform"]["translate"]
    features: list[dict[str, Any]] = []
    for j, (y0, y1) in enumerate(plan.grid.rows):
        for i, (x0, x1) in enumerate(plan.grid.columns):
            if plan.kinds[i, j] != "built":
                continue
            r = plan.rings[i, j]
            zone = "core" if r < 0.3 else "middle" if r < 0.7 else "outer"
            use, height, far, density, green = _LIMITS[zone]
            s = STREET_SETBACK_M
            a, b, c, d = tx + x0 + s, ty + y0 + s, tx + x1 - s, ty + y1 - s
            ring = [[a, b], [c, b], [c, d], [a, d], [a, b]]
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "地块编码": f"JN-{j + 1:02d}-{i + 1:02d}",
                        "用地代码": use,
                        "用地性质": _USE_NAMES[use],
                        "控高": height,
                        "容积率": far,
                        "建筑密度": density,
                        "绿地率": green,
                    },
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
    doc = {
        "type": "FeatureCollection",
        "name": "parcels",
        "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{DEMO_EPSG}"}},
        "features": features,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))
    return len(features)
