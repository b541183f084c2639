"""Sunlight hours (日照分析) on the windows of chosen buildings, against every object around them.

The day is a standard day (大寒日 by default, or 冬至日, or any date), counted in its window of
true solar time (8:00-16:00 on 大寒日, 9:00-15:00 on 冬至日, GB 50180-2018 Table 4.0.9) at a
step (1 minute by default): each step is one sample at its middle, so that a window of 8 hours
is 480 samples of a minute, and a point that sees the sun at all of them gets exactly 8 hours.

A point sees the sun at a sample when the sun is above the horizon (refraction included), in
front of the point's facade, and a ray from the point towards it meets no triangle of any
object around: the objects' meshes as they are stored (triangulated at ingest), the chosen
building's own included, cast with Intel Embree. Objects are taken up to the distance their
height can throw a shadow at the lowest sun of the window (at most `MAX_RADIUS_M`).

Points are placed on each floor's window line of the chosen buildings' facades: the footprint's
outer edges, every `spacing` metres (at least one per facade), at the window-sill height above
each floor (计算起点: 窗台面), 5 cm out from the wall. Floors come from the building's floor
attribute, else its height / storey height. Facades that never face the sun in the window are
left out unless all are asked for. Or points are given, with the direction their window faces.

The rule (GB 50180-2018 Table 4.0.9 by climate zone and city size, or the caller's own): the
hours a point sees the sun, summed over its sunlit spells (累计) or its longest spell (连续),
spells shorter than the local minimum not counted; a point passes when they reach the minimum.
"""

# ruff: noqa: S608  (the SQL is composed of constants only; every value is a bind parameter)

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, text

from analysis import sun
from analysis.model import FLOOR_BINDS, OBJECTS, floors, scenario_input, scheme_city
from cim.crs import lonlath_to_ecef
from cim.errors import CimError, InvalidInput, NotFound

MAX_RADIUS_M = 3000.0
MIN_RADIUS_M = 100.0
MAX_POINTS = 200_000
MAX_SAMPLES = 1440
OFFSET_M = 0.05  # a point stands this far out of its wall
# GB 50180-2018 Table 4.0.9: (day, minimum hours) by climate zone and whether the city has at
# least 500,000 urban residents; the window of each day in true solar time
STANDARD = {
    ("I", True): ("大寒", 2.0), ("I", False): ("大寒", 3.0),
    ("II", True): ("大寒", 2.0), ("II", False): ("大寒", 3.0),
    ("III", True): ("大寒", 2.0), ("III", False): ("大寒", 3.0),
    ("VII", True): ("大寒", 2.0), ("VII", False): ("大寒", 3.0),
    ("IV", True): ("大寒", 3.0), ("IV", False): ("冬至", 1.0),
    ("V", True): ("冬至", 1.0), ("V", False): ("冬至", 1.0),
    ("VI", True): ("冬至", 1.0), ("VI", False): ("冬至", 1.0),
}  # fmt: skip
WINDOWS = {"大寒": ("08:00", "16:00"), "冬至": ("09:00", "15:00")}
DAY_NAMES = {"大寒": "大寒", "dahan": "大寒", "冬至": "冬至", "dongzhi": "冬至"}
INPUTS = {
    "city", "buildings", "points", "date", "year", "window", "step_minutes", "climate_zone",
    "large_city", "min_hours", "accumulate", "min_spell_minutes", "sill_height", "spacing",
    "storey_height", "facades", "scenario", "radius",
}  # fmt: skip


def _minutes(text_: Any, what: str) -> float:
    if not isinstance(text_, str) or len(text_.split(":")) != 2:
        raise InvalidInput(f"{what} {text_!r} is a time of day as HH:MM")
    h, m = text_.split(":")
    try:
        value = int(h) * 60 + int(m)
    except ValueError:
        raise InvalidInput(f"{what} {text_!r} is a time of day as HH:MM") from None
    if not 0 <= value <= 1440:
        raise InvalidInput(f"{what} {text_!r} is not a time of day")
    return float(value)


def _number(inputs: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    v = inputs.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InvalidInput(f"input {key!r} {v!r} is not a number")
    if not low <= v <= high:
        raise InvalidInput(f"input {key!r} {v!r} cannot be right ({low:g} to {high:g})")
    return float(v)


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the analysis reads them, with their defaults; raises InvalidInput."""
    unknown = set(inputs) - INPUTS
    if unknown:
        raise InvalidInput(f"unknown inputs: {', '.join(sorted(unknown))}")
    city = inputs.get("city")
    if not isinstance(city, str) or not city:
        raise InvalidInput("input 'city' (a city code) is required")
    buildings, points = inputs.get("buildings"), inputs.get("points")
    if not buildings and not points:
        raise InvalidInput(
            "give 'buildings' (ids of buildings whose windows are checked) or 'points'"
        )
    if buildings is not None and (
        not isinstance(buildings, list) or not all(isinstance(b, str) for b in buildings)
    ):
        raise InvalidInput("input 'buildings' is a list of building ids")
    checked_points = None if points is None else _points(points)
    zone = inputs.get("climate_zone", "II")
    large = inputs.get("large_city", True)
    if (zone, large) not in STANDARD:
        raise InvalidInput(
            "input 'climate_zone' is one of I to VII (GB 50176) and 'large_city' true or false"
        )
    standard_day, standard_hours = STANDARD[(zone, large)]
    day_given = inputs.get("date", standard_day)
    year = int(_number(inputs, "year", date.today().year, 1950, 2100))
    if isinstance(day_given, str) and day_given in DAY_NAMES:
        name = DAY_NAMES[day_given]
        day = sun.term_of(name, year)
        window = WINDOWS[name]
    else:
        try:
            day = date.fromisoformat(str(day_given))
        except ValueError:
            raise InvalidInput(
                f"input 'date' {day_given!r} is 大寒, 冬至 or a date as YYYY-MM-DD"
            ) from None
        name, window = None, WINDOWS["大寒"]
        day_given = day.isoformat()
    given_window = inputs.get("window", list(window))
    if not isinstance(given_window, list | tuple) or len(given_window) != 2:
        raise InvalidInput(
            "input 'window' is [start, end] in true solar time, e.g. ['08:00', '16:00']"
        )
    start, end = (_minutes(w, "window") for w in given_window)
    if end <= start:
        raise InvalidInput(f"input 'window': {given_window[1]} is not after {given_window[0]}")
    step = _number(inputs, "step_minutes", 1.0, 0.25, 60.0)
    if (end - start) / step > MAX_SAMPLES or abs(
        (end - start) / step - round((end - start) / step)
    ) > 1e-9:
        raise InvalidInput(
            f"input 'step_minutes' {step:g} must divide the window ({end - start:g} minutes) "
            f"into at most {MAX_SAMPLES} steps"
        )
    accumulate = inputs.get("accumulate", "sum")
    if accumulate not in ("sum", "continuous"):
        raise InvalidInput("input 'accumulate' is 'sum' (累计) or 'continuous' (连续)")
    return {
        "city": city,
        "buildings": buildings,
        "points": checked_points,
        "date": name or day_given,  # a standard day by its name, with its year: as asked
        "year": year,
        "window": [sun.minutes_text(start), sun.minutes_text(end)],
        "step_minutes": step,
        "climate_zone": zone,
        "large_city": large,
        "min_hours": _number(inputs, "min_hours", standard_hours, 0.0, 24.0),
        "accumulate": accumulate,
        "min_spell_minutes": _number(inputs, "min_spell_minutes", 0.0, 0.0, 240.0),
        "sill_height": _number(inputs, "sill_height", 0.9, 0.0, 3.0),
        "spacing": _number(inputs, "spacing", 3.0, 0.5, 100.0),
        "storey_height": _number(inputs, "storey_height", 3.0, 2.0, 10.0),
        "facades": _facades(inputs.get("facades", "sunward")),
        "scenario": scenario_input(inputs.get("scenario")),
        "radius": None
        if inputs.get("radius") is None
        else _number(inputs, "radius", 0.0, 10.0, MAX_RADIUS_M),
    }


def _facades(given: Any) -> str:
    if given not in ("sunward", "all"):
        raise InvalidInput("input 'facades' is 'sunward' (those the sun can face) or 'all'")
    return str(given)


def _points(given: Any) -> list[dict[str, Any]]:
    if not isinstance(given, list) or not 0 < len(given) <= MAX_POINTS:
        raise InvalidInput(f"input 'points' is a list of 1 to {MAX_POINTS:,} points")
    out = []
    for k, p in enumerate(given):
        if not isinstance(p, dict):
            raise InvalidInput(f"points[{k}] is {{'lon', 'lat', 'height', 'facing'}}")
        values = [p.get("lon"), p.get("lat"), p.get("height")]
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise InvalidInput(f"points[{k}]: lon, lat and height (ellipsoidal metres) are numbers")
        lon, lat, h = (float(v) for v in values if v is not None)
        if not (-180 <= lon <= 180 and -90 <= lat <= 90 and -500 <= h <= 9000):
            raise InvalidInput(f"points[{k}] ({lon}, {lat}, {h}) is not a place on the Earth")
        facing = p.get("facing")
        if facing is not None and (
            isinstance(facing, bool)
            or not isinstance(facing, int | float)
            or not math.isfinite(facing)
        ):
            raise InvalidInput(f"points[{k}]: 'facing' is the azimuth its window faces, degrees")
        out.append(
            {
                "lon": lon,
                "lat": lat,
                "height": h,
                "facing": None if facing is None else float(facing) % 360,
            }
        )
    return out


@dataclass
class Frame:
    """East-north-up metres around a place on the ellipsoid."""

    lon: float
    lat: float
    h: float

    def __post_init__(self) -> None:
        lo, la = math.radians(self.lon), math.radians(self.lat)
        self.origin = lonlath_to_ecef(np.array([[self.lon, self.lat, self.h]]))[0]
        self.rotation = np.array(
            [
                [-math.sin(lo), math.cos(lo), 0.0],
                [-math.sin(la) * math.cos(lo), -math.sin(la) * math.sin(lo), math.cos(la)],
                [math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)],
            ]
        )

    def from_ecef(self, xyz: NDArray[np.float64]) -> NDArray[np.float64]:
        return (np.asarray(xyz, dtype=np.float64) - self.origin) @ self.rotation.T

    def from_lonlath(self, llh: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.from_ecef(lonlath_to_ecef(np.asarray(llh, dtype=np.float64)))

    def to_lonlath(self, enu: NDArray[np.float64]) -> NDArray[np.float64]:
        from pyproj import Transformer

        xyz = np.asarray(enu) @ self.rotation + self.origin
        t = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
        lon, lat, h = t.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
        return np.column_stack([lon, lat, h])


@dataclass
class Points:
    """Sample points in the frame: place, the facade's outward normal (zero: any direction),
    and what each is (building, facade, floor, index)."""

    enu: NDArray[np.float64]
    normal: NDArray[np.float64]
    labels: list[dict[str, Any]]


_TARGETS = f"""
SELECT o.source_id, o.type, ST_AsBinary(o.footprint) AS footprint, o.z_min, o.z_max,
       coalesce({", ".join(f"o.attributes ->> :floor{k}" for k in range(len(FLOOR_BINDS)))})
         AS floors_text
FROM ({OBJECTS}) o
WHERE o.source_id = ANY (CAST(:ids AS text[]))
"""


def _targets(conn: Connection, city: str, scheme: str | None, ids: list[str]) -> list[Any]:
    binds = {"city": city, "scheme": scheme, "ids": ids, **FLOOR_BINDS}
    rows = conn.execute(text(_TARGETS), binds).mappings().all()
    found = {r["source_id"]: r for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no building {', '.join(missing[:10])} in city {city!r}")
    flat = [i for i in ids if found[i]["footprint"] is None or found[i]["z_max"] is None]
    if flat:
        raise InvalidInput(
            f"building {', '.join(flat[:10])} has no footprint or height: its windows cannot "
            "be placed"
        )
    return [found[i] for i in ids]


def _building_points(frame: Frame, row: Any, q: dict[str, Any]) -> Points:
    import shapely

    shape = shapely.from_wkb(row["footprint"])
    polygons = list(getattr(shape, "geoms", [shape]))
    height = float(row["z_max"]) - float(row["z_min"])
    n_floors, _ = floors(row["floors_text"], height, q["storey_height"])
    storey = height / n_floors
    places, normals, labels = [], [], []
    facade = 0
    for poly in polygons:
        ring = np.asarray(shapely.get_coordinates(shapely.orient_polygons(poly).exterior))
        llh = np.column_stack([ring, np.full(len(ring), float(row["z_min"]))])
        local = frame.from_lonlath(llh)
        xy = local[:, :2]
        for k, (a, b) in enumerate(zip(xy[:-1], xy[1:], strict=True)):
            edge = b - a
            length = float(np.hypot(*edge))
            if length < 0.5:
                continue
            normal = np.array([edge[1], -edge[0]]) / length  # outward, for a counter-clockwise ring
            azimuth = math.degrees(math.atan2(normal[0], normal[1])) % 360.0
            count = max(1, int(length // q["spacing"]))
            ground = (local[k, 2] + local[k + 1, 2]) / 2  # the ground in the frame, there
            for f in range(n_floors):
                z = ground + f * storey + q["sill_height"]
                for i in range(count):
                    at = a + edge * (i + 0.5) / count + normal * OFFSET_M
                    places.append([at[0], at[1], z])
                    normals.append([normal[0], normal[1], 0.0])
                    labels.append(
                        {
                            "building": row["source_id"],
                            "facade": facade,
                            "facade_azimuth": round(azimuth, 2),
                            "floor": f + 1,
                            "index": i,
                        }
                    )
            facade += 1
    return Points(np.array(places).reshape(-1, 3), np.array(normals).reshape(-1, 3), labels)


def _given_points(frame: Frame, given: list[dict[str, Any]]) -> Points:
    llh = np.array([[p["lon"], p["lat"], p["height"]] for p in given])
    enu = frame.from_lonlath(llh)
    normals = np.zeros_like(enu)
    for k, p in enumerate(given):
        if p["facing"] is not None:
            a = math.radians(p["facing"])
            normals[k] = [math.sin(a), math.cos(a), 0.0]
    enu = enu + normals * OFFSET_M
    labels = [{"point": k, "facing": p["facing"]} for k, p in enumerate(given)]
    return Points(enu, normals, labels)


_AROUND = f"""
SELECT o.id, o.z_max, ST_Distance(CAST(o.bbox AS geography), CAST(ST_SetSRID(
           ST_MakePoint(:lon, :lat), 4326) AS geography)) AS distance
FROM ({OBJECTS}) o
WHERE o.bbox && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
  AND o.display_idx IS NOT NULL AND o.z_max > :z_low
"""

_MESHES = """
SELECT o.id, g.origin_x, g.origin_y, g.origin_z, g.mesh_vertices, g.mesh_triangles
FROM city_object o JOIN object_geometry g
  ON g.city_code = o.city_code AND g.object_id = o.id AND g.idx = o.display_idx
WHERE o.city_code IN (:city, :scheme) AND o.id = ANY (CAST(:ids AS bigint[]))
  AND g.mesh_triangles IS NOT NULL
"""


def _obstacles(
    conn: Connection,
    city: str,
    scheme: str | None,
    frame: Frame,
    points: Points,
    lowest_sun: float,
    radius: float | None = None,
) -> tuple[NDArray[np.float32], int, float]:
    """The triangles (n, 3, 3) in the frame of every object whose shadow can reach a point
    (or of every object within `radius` metres of the points, when given); how many objects;
    the radius searched."""
    z_low = float(frame.to_lonlath(points.enu[np.argmin(points.enu[:, 2])][None, :])[0, 2])
    spread = float(np.max(np.hypot(points.enu[:, 0], points.enu[:, 1])))
    reach = (radius or MAX_RADIUS_M) + spread
    dlat = reach / 111_000.0
    dlon = reach / (111_000.0 * max(math.cos(math.radians(frame.lat)), 0.01))
    rows = conn.execute(
        text(_AROUND),
        {
            "city": city,
            "scheme": scheme,
            "lon": frame.lon,
            "lat": frame.lat,
            "x0": frame.lon - dlon,
            "y0": frame.lat - dlat,
            "x1": frame.lon + dlon,
            "y1": frame.lat + dlat,
            "z_low": z_low,
        },
    ).all()
    slope = math.tan(math.radians(max(lowest_sun, 0.5)))
    if radius is not None:
        rows = [r for r in rows if r.distance <= radius + spread]
        slope = 0.0  # every object within it
    ids = [
        int(r.id)
        for r in rows
        if r.distance <= spread + MIN_RADIUS_M
        or (r.z_max - z_low) / max(r.distance - spread, 0.1) >= slope
    ]
    if radius is None:
        highest = max((r.z_max for r in rows), default=z_low) - z_low
        radius = min(MAX_RADIUS_M, max(highest / slope, MIN_RADIUS_M))
    if not ids:
        return np.zeros((0, 3, 3), np.float32), 0, radius
    tris = []
    for r in conn.execute(text(_MESHES), {"city": city, "scheme": scheme, "ids": ids}):
        v = np.frombuffer(r.mesh_vertices, "<f4").reshape(-1, 3).astype(np.float64)
        t = np.frombuffer(r.mesh_triangles, "<u4").reshape(-1, 3)
        local = frame.from_ecef(v + np.array([r.origin_x, r.origin_y, r.origin_z]))
        tris.append(local[t])
    return np.concatenate(tris).astype(np.float32), len(ids), radius


def _scene(triangles: NDArray[np.float32]) -> Any:
    """An Embree scene of the triangles (None when there are none)."""
    if not len(triangles):
        return None
    try:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh
    except ImportError:
        raise CimError(
            "the sunlight analysis casts its rays with Intel Embree (the Python package "
            "embreex), which is not installed; its wheels are for x86-64 machines only"
        ) from None

    scene = rtcore_scene.EmbreeScene()
    TriangleMesh(scene, np.ascontiguousarray(triangles, dtype=np.float32))
    return scene


def _occluded(
    scene: Any, origins: NDArray[np.float64], direction: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Whether each ray from `origins` along `direction` meets a triangle of the scene."""
    if scene is None or not len(origins):
        return np.zeros(len(origins), dtype=bool)
    dirs = np.ascontiguousarray(np.broadcast_to(direction.astype(np.float32), (len(origins), 3)))
    hit = scene.run(np.ascontiguousarray(origins, dtype=np.float32), dirs, query="OCCLUDED")
    return np.asarray(hit) >= 0


def spells(lit: NDArray[np.bool_]) -> list[list[tuple[int, int]]]:
    """Each row's runs of sunlit samples as (first, last + 1)."""
    padded = np.zeros((lit.shape[0], lit.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = lit
    change = np.diff(padded, axis=1)
    rows_on, cols_on = np.nonzero(change == 1)
    rows_off, cols_off = np.nonzero(change == -1)
    out: list[list[tuple[int, int]]] = [[] for _ in range(lit.shape[0])]
    for r, a, b in zip(rows_on, cols_on, cols_off, strict=True):
        out[r].append((int(a), int(b)))
    assert (rows_on == rows_off).all()
    return out


def verify(conn: Connection, q: dict[str, Any]) -> list[Any]:
    """The buildings the checked inputs `q` name.

    Raises:
        NotFound: no such city or building. InvalidInput: a building without footprint.
    """
    city = q["city"]
    scheme = scheme_city(conn, city, q["scenario"])  # the city, and its scenario when named
    return _targets(conn, city, scheme, q["buildings"]) if q["buildings"] else []


def compute(conn: Connection, inputs: dict[str, Any]) -> dict[str, Any]:
    """Sunlight hours at the windows of the buildings (or at the points) asked for."""
    q = check_inputs(inputs)
    city = q["city"]
    targets = verify(conn, q)
    scheme = scheme_city(conn, city, q["scenario"])
    if targets:
        import shapely

        centre = shapely.from_wkb(targets[0]["footprint"]).centroid
        frame = Frame(centre.x, centre.y, float(targets[0]["z_min"]))
    else:
        first = q["points"][0]
        frame = Frame(first["lon"], first["lat"], first["height"])
    parts = [_building_points(frame, t, q) for t in targets]
    if q["points"]:
        parts.append(_given_points(frame, q["points"]))
    enu = np.concatenate([p.enu for p in parts])
    normal = np.concatenate([p.normal for p in parts])
    labels = [label for p in parts for label in p.labels]
    if len(enu) > MAX_POINTS:
        raise InvalidInput(f"{len(enu):,} points: at most {MAX_POINTS:,} (raise 'spacing')")
    start, end = (_minutes(w, "window") for w in q["window"])
    step = q["step_minutes"]
    n = int(round((end - start) / step))
    solar = start + (np.arange(n) + 0.5) * step  # each sample is the middle of its step
    name = DAY_NAMES.get(q["date"])
    day = sun.term_of(name, q["year"]) if name else date.fromisoformat(q["date"])
    instants = sun.solar_instants(day, frame.lon, solar)
    elevation, azimuth = sun.position(instants, frame.lon, frame.lat, frame.h)
    if not (elevation > 0).any():
        raise InvalidInput(
            f"the sun does not rise above the horizon at {frame.lat:.2f}° on {day} between "
            f"{q['window'][0]} and {q['window'][1]} true solar time: choose another date or window"
        )
    el, az = np.radians(elevation), np.radians(azimuth)
    sun_dirs = np.column_stack([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])
    facing = np.linalg.norm(normal, axis=1) > 0
    front = (normal @ sun_dirs.T > 0) | ~facing[:, None]  # (points, samples)
    front &= (elevation > 0)[None, :]
    if q["facades"] == "sunward" and q["buildings"]:
        keep = front.any(axis=1) | np.array(["point" in label for label in labels])
        enu, normal, front = enu[keep], normal[keep], front[keep]
        labels = [label for label, k in zip(labels, keep, strict=True) if k]
    up = elevation > 0
    lowest = float(elevation[up].min())
    triangles, objects, radius = _obstacles(
        conn, city, scheme, frame, Points(enu, normal, labels), lowest, q["radius"]
    )
    scene = _scene(triangles)
    lit = np.zeros(front.shape, dtype=bool)
    for k in np.nonzero(up)[0]:
        rows = np.nonzero(front[:, k])[0]
        if len(rows):
            lit[rows, k] = ~_occluded(scene, enu[rows], sun_dirs[k])
    results = _rule(q, labels, frame, enu, lit, solar, step)
    return {
        "city": city,
        "scenario": q["scenario"],
        "date": day.isoformat(),
        "day": name,
        "window": q["window"],
        "time": "true solar time (真太阳时) at the place",
        "step_minutes": step,
        "place": {"lon": frame.lon, "lat": frame.lat},
        "rule": {
            "min_hours": q["min_hours"],
            "accumulate": q["accumulate"],
            "min_spell_minutes": q["min_spell_minutes"],
            "sill_height_m": q["sill_height"],
            "standard": (
                f"GB 50180-2018 Table 4.0.9, climate zone {q['climate_zone']}, "
                + ("city of 500,000 or more" if q["large_city"] else "city under 500,000")
            ),
            "text": (
                f"a window passes with at least {q['min_hours']:g} h of sun "
                + ("summed over its sunlit spells" if q["accumulate"] == "sum" else "in one spell")
                + (f" of at least {q['min_spell_minutes']:g} min" if q["min_spell_minutes"] else "")
                + f" between {q['window'][0]} and {q['window'][1]} true solar time on {day}"
            ),
        },
        "sun": {
            "first": {
                "solar_time": sun.minutes_text(float(solar[0])),
                "elevation": float(elevation[0]),
                "azimuth": float(azimuth[0]),
            },
            "noon_elevation": float(elevation.max()),
        },
        "obstacles": {"objects": objects, "triangles": int(len(triangles)), "radius_m": radius},
        **results,
    }


def _rule(
    q: dict[str, Any],
    labels: list[dict[str, Any]],
    frame: Frame,
    enu: NDArray[np.float64],
    lit: NDArray[np.bool_],
    solar: NDArray[np.float64],
    step: float,
) -> dict[str, Any]:
    start = float(solar[0]) - step / 2
    minimum = q["min_spell_minutes"]
    lonlath = frame.to_lonlath(enu) if len(enu) else np.zeros((0, 3))
    points = []
    failing = 0
    for k, runs in enumerate(spells(lit)):
        lengths = [(b - a) * step for a, b in runs]
        counted = [m for m in lengths if m >= minimum - 1e-9]
        total = sum(counted) if q["accumulate"] == "sum" else max(counted, default=0.0)
        passes = total >= q["min_hours"] * 60.0 - 1e-9
        failing += not passes
        points.append(
            {
                **labels[k],
                "lon": round(float(lonlath[k, 0]), 8),
                "lat": round(float(lonlath[k, 1]), 8),
                "height": round(float(lonlath[k, 2]), 3),
                "intervals": [
                    [sun.minutes_text(start + a * step), sun.minutes_text(start + b * step)]
                    for a, b in runs
                ],
                "minutes": total,
                "hours": total / 60.0,
                "passes": passes,
            }
        )
    return {
        "points": points,
        "summary": {
            "points": len(points),
            "passing": len(points) - failing,
            "failing": failing,
            "min_hours_found": min((p["hours"] for p in points), default=None),
        },
    }
