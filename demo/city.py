"""Synthetic demo city around Jinan, written as CityJSON 2.0 or CityJSONSeq in bounded memory.

The city is a street grid with blocks of buildings (denser and taller towards the centre), parks,
a lake and a river, street trees and the point layers smart-city grading looks for: 5G base
stations, CCTV cameras, street lights and IoT sensors. The same (buildings, seed, fmt) always
gives the same bytes: one `random.Random(seed)` drives everything, in a fixed order.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyproj import Transformer

from cim.errors import InvalidInput
from demo import shapes
from demo.gml import GmlSink
from demo.shapes import Box, CityPlan, Json, Street, plan_city
from demo.writers import DocumentSink, SequenceSink, Sink

DEMO_EPSG = 4548  # CGCS2000 / 3-degree Gauss-Kruger CM 117E, around Jinan
DEMO_CENTRE_LONLAT = (117.02, 36.66)
DEMO_TITLE = "CIM demo city (synthetic, Jinan area)"
FORMATS = ("cityjson", "cityjsonseq", "citygml")
LANDMARK_HEIGHT = 300.0  # the tallest thing in the city, so the extent is known before writing

Progress = Callable[[int], None] | None

_CITY_REF = f"https://www.opengis.net/def/crs/EPSG/0/{DEMO_EPSG}"


@dataclass(frozen=True)
class DemoSummary:
    """What `generate_city` wrote."""

    path: Path
    format: str
    counts: dict[str, int]
    total: int
    vertices: int


# --- what the buildings, streets and trees are like ------------------------------------------


@dataclass(frozen=True)
class _Archetype:
    """A kind of building: function, storeys, roof mix (flat, gabled, hipped), size and age."""

    function: str
    storeys: tuple[int, int]
    storey_height: float
    roofs: tuple[float, float, float]
    size: tuple[float, float]
    years: tuple[int, int]

    @property
    def pitch(self) -> tuple[float, float]:
        """Range of roof pitch in degrees: sheds are low, houses steeper."""
        return (5.0, 12.0) if self.function == "industrial" else (22.0, 38.0)


_ROOFS = ("flat", "gabled", "hipped")
_FLAT = (1.0, 0.0, 0.0)
# weight, then _Archetype: function, storeys, storey height, roof weights, max size (m), years
_ZONE_TABLE: dict[str, list[tuple[Any, ...]]] = {
    "core": [
        (30, "office", (12, 45), 3.8, _FLAT, (50, 40), (1995, 2025)),
        (25, "commercial", (3, 25), 4.5, _FLAT, (70, 50), (1990, 2025)),
        (32, "residential", (18, 33), 3.0, _FLAT, (40, 22), (2000, 2025)),
        (5, "public", (2, 8), 4.2, (0.7, 0.0, 0.3), (60, 45), (1950, 2020)),
        (4, "healthcare", (6, 20), 3.9, _FLAT, (70, 35), (1980, 2022)),
        (4, "education", (4, 6), 3.6, _FLAT, (70, 22), (1960, 2020)),
    ],
    "middle": [
        (40, "residential", (6, 18), 3.0, _FLAT, (60, 16), (1985, 2025)),
        (22, "residential", (3, 6), 2.9, (0.3, 0.5, 0.2), (50, 13), (1950, 1999)),
        (10, "commercial", (2, 8), 4.2, _FLAT, (50, 35), (1985, 2025)),
        (6, "office", (6, 20), 3.8, _FLAT, (45, 30), (1990, 2025)),
        (8, "education", (3, 6), 3.6, (0.6, 0.0, 0.4), (65, 20), (1960, 2020)),
        (5, "healthcare", (3, 14), 3.9, _FLAT, (60, 30), (1970, 2022)),
        (5, "public", (1, 5), 4.2, (0.5, 0.0, 0.5), (40, 30), (1950, 2020)),
        (4, "industrial", (1, 3), 6.0, (0.6, 0.4, 0.0), (80, 50), (1958, 2010)),
    ],
    "outer": [
        (38, "residential", (2, 3), 3.1, (0.05, 0.5, 0.45), (18, 12), (1995, 2025)),
        (12, "residential", (1, 2), 3.0, (0.0, 0.85, 0.15), (16, 10), (1950, 1995)),
        (15, "residential", (5, 11), 3.0, (0.7, 0.3, 0.0), (60, 15), (1990, 2025)),
        (20, "industrial", (1, 3), 6.0, (0.5, 0.5, 0.0), (90, 60), (1958, 2020)),
        (6, "commercial", (1, 4), 4.5, _FLAT, (60, 40), (1995, 2025)),
        (4, "education", (2, 5), 3.6, (0.5, 0.0, 0.5), (65, 20), (1970, 2024)),
        (2, "healthcare", (2, 6), 3.9, _FLAT, (50, 25), (1980, 2024)),
        (3, "public", (1, 3), 4.2, (0.4, 0.0, 0.6), (35, 25), (1950, 2020)),
    ],
}
_ZONES = {z: [_Archetype(*row[1:]) for row in rows] for z, rows in _ZONE_TABLE.items()}
_ZONE_WEIGHTS = {z: [row[0] for row in rows] for z, rows in _ZONE_TABLE.items()}
_LANDMARK = _Archetype("office", (68, 68), LANDMARK_HEIGHT / 68, _FLAT, (48, 42), (2021, 2021))
_LANDMARK_NAME = "泉城中心大厦"
_NAMED = {
    "education": ("小学", "中学", "幼儿园", "实验学校"),
    "healthcare": ("社区卫生服务中心", "医院", "中医院"),
    "public": ("街道办事处", "派出所", "图书馆", "文化馆", "社区服务中心"),
}
_SPECIES = {
    "法桐": "Platanus × acerifolia",
    "国槐": "Sophora japonica",
    "柳树": "Salix babylonica",
    "银杏": "Ginkgo biloba",
    "白蜡": "Fraxinus chinensis",
    "雪松": "Cedrus deodara",
}
_STREET_SPECIES = {"arterial": ("法桐", "法桐", "国槐"), "collector": ("国槐", "白蜡", "银杏")}
_PARK_SPECIES = ("国槐", "银杏", "雪松", "柳树", "白蜡", "法桐")
_RING_NAMES = (("二环南路", "二环北路"), ("二环西路", "二环东路"))
_ARTERIAL_NAMES = (
    ("泉城路", "明湖路", "北园大街", "小清河路", "黄河大街"),
    ("顺河街", "历山路", "山大路", "奥体中路", "凤山路"),
)
_PARK_NAMES = ("泉城公园", "英雄山公园", "千佛山公园", "环城公园", "百花公园", "植物园")
_SPRINGS = ("趵突泉", "五龙潭", "黑虎泉", "珍珠泉", "百花洲", "白石泉")
_OPERATORS = ("中国移动", "中国联通", "中国电信")
_POLE_HEIGHTS = {"arterial": 12.0, "collector": 10.0, "local": 8.0}
_ROAD_SEMANTICS: list[Json] = [{"type": "TrafficArea"}, {"type": "AuxiliaryTrafficArea"}]
_WATER_SEMANTICS: list[Json] = [{"type": "WaterSurface"}]
_DIGITS = "零一二三四五六七八九"


def chinese_number(k: int) -> str:
    """Write 1 <= k < 10000 in Chinese numerals, as street numbering does (十一, 一百零五)."""
    parts: list[str] = []
    zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = k // value % 10
        if digit:
            parts.append(("零" if zero and parts else "") + _DIGITS[digit] + unit)
        zero = not digit
    text = "".join(parts)
    return text[1:] if text.startswith("一十") else text


def street_name(street: Street, horizontal: bool, n: int) -> str:
    """Ring and named arterials while names last, else Jinan-style 经X路 (east-west) / 纬X路."""
    axis = 0 if horizontal else 1
    if street.index in (0, n):
        return _RING_NAMES[axis][street.index // n]
    names = _ARTERIAL_NAMES[axis]
    if street.cls == "arterial" and street.index // 4 <= len(names):
        return names[street.index // 4 - 1]
    return ("经" if horizontal else "纬") + chinese_number(street.index) + "路"


# --- the walk through the city ---------------------------------------------------------------

Point3 = tuple[float, float, float]


class _CityBuilder:
    """Walks the plan in a fixed order and hands every object to the sink as soon as it exists."""

    def __init__(
        self,
        plan: CityPlan,
        rng: random.Random,
        sink: Sink,
        progress: Progress,
        only_buildings: bool = False,
    ) -> None:
        self.plan, self.rng, self.sink, self.progress = plan, rng, sink, progress
        self.only_buildings = only_buildings
        self.n = len(plan.grid.columns)
        self.id_width = max(6, len(str(sum(plan.counts.values()))))
        self.serials: dict[str, int] = {}
        self.pending = 0
        self.until_station = rng.randint(40, 60)
        self.names = (
            [street_name(s, True, self.n) for s in plan.grid.horizontal],
            [street_name(s, False, self.n) for s in plan.grid.vertical],
        )
        self.house_numbers = [0] * (self.n + 1)

    def run(self) -> None:
        """Blocks row by row from the south-west, then every street segment and crossing."""
        grid, n = self.plan.grid, self.n
        for j, (y0, y1) in enumerate(grid.rows):
            for i, (x0, x1) in enumerate(grid.columns):
                kind = self.plan.kinds[i, j]
                if kind == "built":
                    self.block(i, j, (x0, y0, x1, y1))
                elif kind == "river":
                    self.river((x0, y0, x1, y1))
                else:
                    self.park((x0, y0, x1, y1), lake=kind == "lake")
        for j, h in enumerate(grid.horizontal):
            for i, span in enumerate(grid.columns):
                # each east-west segment also carries the crossing at its west end (and the last
                # one the crossing at its east end), so every crossing is paved exactly once
                owned = grid.vertical[i : i + 1] + (grid.vertical[n:] if i == n - 1 else [])
                squares = [(v.start, h.start, v.end, h.end) for v in owned]
                self.segment(h, True, span, self.names[0][j], squares)
        for k, v in enumerate(grid.vertical):
            for span in grid.rows:
                self.segment(v, False, span, self.names[1][k], [])
        for v in grid.vertical:
            for h in grid.horizontal:
                self.crossing(v, h)
        if self.progress is not None and self.pending:
            self.progress(self.pending)

    def emit(self, prefix: str, kind: str, geometry: Json, attributes: Json, vertices: Any) -> None:
        """Number the object within its layer and write it."""
        serial = self.serials[prefix] = self.serials.get(prefix, 0) + 1
        if self.only_buildings and kind != "Building":
            return  # still numbered and drawn from the generator, so buildings stay identical
        obj = {"type": kind, "attributes": attributes, "geometry": [geometry]}
        self.sink.add(f"{prefix}_{serial:0{self.id_width}d}", obj, vertices)

    def emit_point(self, prefix: str, kind: str, at: Point3, attributes: Json) -> None:
        """Write a one-point MultiPoint object: a lamp, camera, antenna or sensor at its height."""
        vertex = [shapes.mm(at[0]), shapes.mm(at[1]), shapes.mm(at[2])]
        self.emit(prefix, kind, shapes.point(self.sink.base), attributes, [vertex])

    # buildings

    def block(self, i: int, j: int, box: Box) -> None:
        """Fill a block with buildings, each in its own lot; the central block gets the landmark."""
        r = self.plan.rings[i, j]
        zone = "core" if r < 0.3 else "middle" if r < 0.7 else "outer"
        for k, lot in enumerate(shapes.block_lots(box, self.plan.counts[i, j], setback=6.0)):
            if (i, j) == self.plan.centre and k == 0:
                self.building(_LANDMARK, lot, j, _LANDMARK_NAME)
            else:
                arch = self.rng.choices(_ZONES[zone], weights=_ZONE_WEIGHTS[zone])[0]
                self.building(arch, lot, j, None)

    def building(self, arch: _Archetype, lot: Box, row: int, name: str | None) -> None:
        """One LoD2 building in its lot, then whatever equipment goes on or next to it."""
        rng = self.rng
        storeys = rng.randint(*arch.storeys)
        roof = rng.choices(_ROOFS, weights=arch.roofs)[0] if storeys <= 6 else "flat"
        corners = shapes.footprint(lot, *arch.size, rng)
        length, depth = math.dist(corners[0], corners[1]), math.dist(corners[1], corners[2])
        eave = ridge = shapes.mm(storeys * arch.storey_height)
        inset = 0.0
        if roof != "flat":
            ridge += shapes.mm(depth / 2 * math.tan(math.radians(rng.uniform(*arch.pitch))))
            inset = min(depth / 2, (length - 1.0) / 2) / length
        geometry, vertices = shapes.building_solid(
            corners, eave, ridge, roof, inset, self.sink.base
        )
        street = self.names[0][row]
        self.house_numbers[row] += 1
        attributes: Json = {
            "function": arch.function,
            "roofType": roof,
            "storeysAboveGround": storeys,
            "measuredHeight": ridge / 1000,
            "yearOfConstruction": rng.randint(*arch.years),
            "address": f"济南市{street}{2 * self.house_numbers[row] - 1}号",
        }
        if name is None and arch.function in _NAMED and rng.random() < 0.6:
            name = street + rng.choice(_NAMED[arch.function])
        if name is not None:
            attributes["name"] = name
        self.emit("BLDG", "Building", geometry, attributes, vertices)
        self.pending += 1
        if self.progress is not None and self.pending >= 1000:
            self.progress(self.pending)
            self.pending = 0
        top = ridge / 1000 if roof == "flat" else None
        centre = (sum(x for x, _ in corners) / 4, sum(y for _, y in corners) / 4)
        self.equip(arch.function, lot, centre, top)

    def equip(
        self, function: str, lot: Box, centre: tuple[float, float], top: float | None
    ) -> None:
        """A 5G station every 40-60 buildings (on flat roofs 15-200 m high, else a mast in the
        lot's corner); cameras at some entrances, parking sensors at some shops."""
        rng = self.rng
        x0, y0, x1, y1 = lot
        self.until_station -= 1
        if self.until_station == 0:
            self.until_station = rng.randint(40, 60)
            rooftop = top is not None and 15.0 <= top <= 200.0
            mast = round(rng.uniform(3.0, 6.0) if rooftop else rng.uniform(20.0, 35.0), 1)
            at = (*centre, top + mast) if rooftop and top else (x0 + 1.0, y1 - 1.0, mast)
            attributes = {
                "function": "5g_base_station",
                "operator": rng.choice(_OPERATORS),
                "coverageRadius": 300.0,
                "height": mast,
                "mounting": "rooftop" if rooftop else "mast",
            }
            self.emit_point("5G", "GenericCityObject", at, attributes)
        if function in ("commercial", "office", "healthcare", "education") and rng.random() < 0.25:
            self.camera((x1 - 1.0, y0 + 1.0, 4.0), public=False)
        if function == "commercial" and rng.random() < 0.3:
            self.sensor((x0 + 1.0, y0 + 1.0, 0.3), "parking")

    def camera(self, at: Point3, public: bool) -> None:
        """A CCTV camera mounted at `at`."""
        attributes = {"function": "cctv_camera", "publicArea": public, "coverageRadius": 50.0}
        self.emit_point("CCTV", "CityFurniture", at, {**attributes, "mountingHeight": at[2]})

    def sensor(self, at: Point3, kind: str) -> None:
        """An IoT sensor of the given type."""
        installed = self.rng.randint(2016, 2025)
        attributes = {"function": "iot_sensor", "sensorType": kind, "installed": installed}
        self.emit_point("IOT", "GenericCityObject", at, attributes)

    # green and blue

    def tree(self, x: float, y: float, species: str, tallest: float) -> None:
        """A tree as an instance of the shared template, 6 m up to `tallest`."""
        height = round(self.rng.uniform(6.0, tallest), 1)
        geometry = shapes.tree_instance(self.sink.base, height, self.rng.uniform(0.0, 2 * math.pi))
        crown = round(shapes.TREE_CROWN_DIAMETER * height / shapes.TREE_TEMPLATE_HEIGHT, 2)
        attributes = {"species": species, "scientificName": _SPECIES[species], "height": height}
        vertex = [shapes.mm(x), shapes.mm(y), 0]
        tree_type = "SolitaryVegetationObject"
        self.emit("TREE", tree_type, geometry, {**attributes, "crownDiameter": crown}, [vertex])

    def water(self, outline: shapes.Ring, name: str, function: str) -> None:
        """A WaterBody whose surface is one polygon at ground level."""
        geometry, vertices = shapes.ground_surfaces(
            [[outline]], self.sink.base, _WATER_SEMANTICS, [0]
        )
        self.emit("WATER", "WaterBody", geometry, {"name": name, "function": function}, vertices)

    def green(self, polygons: list[list[shapes.Ring]], name: str) -> None:
        """A PlantCover park."""
        geometry, vertices = shapes.ground_surfaces(polygons, self.sink.base)
        self.emit("PARK", "PlantCover", geometry, {"function": "park", "name": name}, vertices)

    def park(self, box: Box, lake: bool) -> None:
        """A park block: maybe a pond (大明湖 in the lake block), trees, willows by the water."""
        rng = self.rng
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        pond: shapes.Ellipse | None = None
        if lake:
            pond = shapes.Ellipse((x0 + x1) / 2, (y0 + y1) / 2, 0.38 * w, 0.36 * h)
        elif rng.random() < 0.5:
            cx, cy = x0 + w * rng.uniform(0.4, 0.6), y0 + h * rng.uniform(0.4, 0.6)
            pond = shapes.Ellipse(cx, cy, w * rng.uniform(0.12, 0.22), h * rng.uniform(0.12, 0.22))
        rings = [shapes.rectangle(box)]
        if pond is not None:
            rings.append(pond.outline()[::-1])  # the park has a hole where the pond is
        self.green([rings], "大明湖公园" if lake else rng.choice(_PARK_NAMES))
        if pond is not None:
            outline = pond.outline()
            self.water(
                outline, "大明湖" if lake else rng.choice(_SPRINGS), "lake" if lake else "pond"
            )
            self.sensor((*outline[0], 1.0), "water_level")
        for _ in range(int(w * h / 500 * rng.uniform(0.6, 1.0))):
            x, y = rng.uniform(x0 + 3, x1 - 3), rng.uniform(y0 + 3, y1 - 3)
            if pond is not None and pond.contains(x, y, margin=3.0):
                continue
            waterside = pond is not None and pond.contains(x, y, margin=10.0)
            self.tree(x, y, "柳树" if waterside else rng.choice(_PARK_SPECIES), 18.0)
        self.camera((x0 + 2.0, y0 + 2.0, 5.0), public=True)
        self.sensor((x1 - 2.0, y1 - 2.0, 3.0), "air_quality")

    def river(self, box: Box) -> None:
        """A stretch of 小清河 across the block, green banks either side lined with willows."""
        x0, y0, x1, y1 = box
        mid, half = (y0 + y1) / 2, 14.0
        self.water(shapes.rectangle((x0, mid - half, x1, mid + half)), "小清河", "river")
        banks = [(x0, y0, x1, mid - half), (x0, mid + half, x1, y1)]
        self.green([[shapes.rectangle(b)] for b in banks], "小清河滨河绿带")
        for y in (mid - half - 3.0, mid + half + 3.0):
            for x, _ in shapes.points_along(True, (x0, x1), y, 6.0, 15.0):
                self.tree(x, y, "柳树", 14.0)
        self.sensor(((x0 + x1) / 2, mid - half - 1.0, 1.0), "water_level")

    # streets

    def segment(
        self,
        street: Street,
        horizontal: bool,
        span: tuple[float, float],
        name: str,
        squares: list[Box],
    ) -> None:
        """A road between two crossings (plus the crossings it owns), its lamps and street trees."""
        rng = self.rng
        parts = shapes.road_polygons(street, horizontal, span) + squares
        values = [0, 1, 1] + [0] * len(squares)
        polygons = [[shapes.rectangle(p)] for p in parts]
        geometry, vertices = shapes.ground_surfaces(
            polygons, self.sink.base, _ROAD_SEMANTICS, values
        )
        attributes = {
            "name": name,
            "class": street.cls,
            "lanes": street.lanes,
            "width": street.width,
        }
        self.emit("ROAD", "Road", geometry, attributes, vertices)
        s, e, sw = street.start, street.end, street.sidewalk
        pole = _POLE_HEIGHTS[street.cls]
        width, height = self.plan.grid.size
        for c in (s + sw - 0.7,) if street.cls == "local" else (s + sw - 0.7, e - sw + 0.7):
            for x, y in shapes.points_along(horizontal, span, c, 10.0, 35.0):
                r = math.hypot(x - width / 2, y - height / 2) / (min(width, height) / 2)
                smart = rng.random() < 0.75 - 0.5 * min(1.0, r)  # smarter towards the centre
                attributes = {"function": "street_light", "smart": smart, "poleHeight": pole}
                self.emit_point("LIGHT", "CityFurniture", (x, y, pole), attributes)
                if smart and rng.random() < 0.12:
                    self.sensor((x, y, pole - 2.0), rng.choice(("air_quality", "noise")))
        if street.cls in _STREET_SPECIES:
            for c in (s + sw / 2, e - sw / 2):
                for x, y in shapes.points_along(horizontal, span, c, 5.0, 20.0):
                    self.tree(x, y, rng.choice(_STREET_SPECIES[street.cls]), 16.0)

    def crossing(self, v: Street, h: Street) -> None:
        """A public camera on a corner of most crossings, traffic sensors where main roads meet.

        Corners are taken 1.5 m into a neighbouring block, inside its setback, so never in a road
        or a building.
        """
        x = v.start - 1.5 if v.index > 0 else v.end + 1.5
        y = h.start - 1.5 if h.index > 0 else h.end + 1.5
        if self.rng.random() < (0.3 if v.cls == h.cls == "local" else 0.75):
            self.camera((x, y, 6.0), public=True)
        if v.cls != "local" and h.cls != "local" and self.rng.random() < 0.5:
            x = v.end + 1.5 if v.index < self.n else v.start - 1.5
            y = h.end + 1.5 if h.index < self.n else h.start - 1.5
            self.sensor((x, y, 6.0), "traffic")


# --- entry point -------------------------------------------------------------------------------


def city_header(plan: CityPlan, buildings: int, seed: int) -> Json:
    """Everything of the file except its objects and vertices: transform, metadata, templates."""
    to_grid = Transformer.from_crs(4326, DEMO_EPSG, always_xy=True)
    east, north = to_grid.transform(*DEMO_CENTRE_LONLAT)
    width, height = plan.grid.size
    tx, ty = float(round(east - width / 2)), float(round(north - height / 2))
    return {
        "type": "CityJSON",
        "version": "2.0",
        "transform": {"scale": [0.001, 0.001, 0.001], "translate": [tx, ty, 0.0]},
        "metadata": {
            "title": DEMO_TITLE,
            "identifier": f"cim-demo-{buildings}-{seed}",
            "referenceSystem": _CITY_REF,
            "geographicalExtent": [tx, ty, 0.0, tx + width, ty + height, LANDMARK_HEIGHT],
        },
        "geometry-templates": shapes.tree_templates(),
    }


def generate_city(
    out: Path,
    buildings: int = 3000,
    seed: int = 42,
    fmt: str = "cityjson",
    progress: Callable[[int], None] | None = None,
    only_buildings: bool = False,
) -> DemoSummary:
    """Write a synthetic city of exactly `buildings` buildings to `out` and say what is in it.

    `progress`, if given, is called with the number of buildings written since its last call.
    `only_buildings` leaves out every other layer (the buildings are the same as with them).

    Raises:
        InvalidInput: `fmt` is not one of FORMATS, or `buildings` is below 1.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown demo city format {fmt!r}; use one of {', '.join(FORMATS)}")
    if buildings < 1:
        raise InvalidInput(f"a demo city needs at least one building, not {buildings}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    plan = plan_city(buildings, rng)
    header = city_header(plan, buildings, seed)
    try:
        with out.open("wb", buffering=1 << 20) as fh:
            if fmt == "cityjson":
                with tempfile.TemporaryFile(dir=out.parent, buffering=1 << 20) as spool:
                    sink: Sink = DocumentSink(fh, spool, header)
                    _CityBuilder(plan, rng, sink, progress, only_buildings).run()
                    sink.close()
            elif fmt == "citygml":
                sink = GmlSink(fh, header)
                _CityBuilder(plan, rng, sink, progress, only_buildings).run()
                sink.close()
            else:
                sink = SequenceSink(fh, header)
                _CityBuilder(plan, rng, sink, progress, only_buildings).run()
    except BaseException:
        out.unlink(missing_ok=True)  # no half-written city left behind, e.g. after Ctrl-C
        raise
    return DemoSummary(out, fmt, dict(sink.counts), sum(sink.counts.values()), sink.vertices)
