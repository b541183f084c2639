"""Planning parcels (控规地块): polygons read from a planning layer (GeoJSON, GeoPackage,
Shapefile, through GDAL by pyogrio) with the limits they set, stored as what they are, not as
buildings. The one module that writes `planning_parcel`.

Each limit comes from a field: named by the caller (`fields={"height_limit": "控高"}`), else
the first of its usual names (English, pinyin initials and Chinese) the layer has. A named field
the layer lacks, a value that cannot be a limit (a density of 150 %, a negative height) or a
feature that is not a polygon stops the ingest with the feature's id and the problem, and
nothing is stored. Densities and green ratios written as fractions (every value of the column
at most 1) are read as fractions and said so. Every source field is kept as an attribute, text
as text. A layer of parcels is a dataset of its city: re-ingesting it replaces it, `cim
datasets delete` removes it.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
from sqlalchemy import Engine

from cim.crs import ToStorage, crs_label, parse_crs
from cim.errors import DatabaseUnavailable, IngestError, InvalidCRS
from ingest.datasets import ensure_city, finish_dataset, replace_dataset
from ingest.footprints import plain_value
from ingest.pipeline import file_checksum

# the limits a parcel sets, each with the names it goes by in planning data, most usual first
KNOWN_FIELDS: dict[str, tuple[str, ...]] = {
    "code": ("code", "parcel_id", "PARCEL_ID", "parcel", "DKBM", "DKBH", "地块编码", "地块编号"),
    "land_use": ("land_use", "landuse", "LAND_USE", "use", "YDXZ", "YDDM", "用地性质", "用地代码"),
    "height_limit": (
        "height_limit",
        "max_height",
        "HEIGHT_LIM",
        "KG",
        "JZXG",
        "控高",
        "建筑限高",
        "限高",
        "建筑控高",
    ),
    "far_limit": ("far_limit", "far", "FAR", "RJL", "容积率", "容积率上限"),
    "density_limit": ("density_limit", "density", "DENSITY", "JZMD", "建筑密度", "建筑密度上限"),
    "green_ratio": ("green_ratio", "green", "GREEN", "LDL", "绿地率", "绿地率下限"),
}
LIMITS = ("height_limit", "far_limit", "density_limit", "green_ratio")
# what each limit may be: (lowest, highest, whether the lowest itself is allowed)
RANGES = {
    "height_limit": (0.0, 1000.0, False),  # metres; the tallest building is 828 m
    "far_limit": (0.0, 50.0, False),
    "density_limit": (0.0, 100.0, False),  # per cent
    "green_ratio": (0.0, 100.0, True),  # per cent
}
PERCENTS = ("density_limit", "green_ratio")
PARCEL_LAYER_NAMES = ("parcels", "parcel", "plots", "地块", "控规地块", "dk")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?|[-+]?\.\d+")


def parse_field_options(given: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--field KEY=NAME` options as a mapping; refuses unknown keys."""
    out: dict[str, str] = {}
    for item in given:
        key, sep, name = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not name.strip():
            raise IngestError(item, "a field is named as KEY=NAME, e.g. height_limit=控高")
        if key not in KNOWN_FIELDS:
            raise IngestError(item, f"no field {key!r} is known; known: {', '.join(KNOWN_FIELDS)}")
        out[key] = name.strip()
    return out


def looks_like_parcels(path: Path, layer: str | None) -> bool:
    """Whether a vector file's layer (the one named, else the first) is named as parcels."""
    import pyogrio

    try:
        names = [str(n) for n, _ in pyogrio.list_layers(path)]
    except Exception:  # GDAL raises its own kinds; the reader that opens it says what is wrong
        return False
    name = layer or (names[0] if names else "")
    return name.lower() in PARCEL_LAYER_NAMES or name in PARCEL_LAYER_NAMES


@dataclass
class ParcelReport:
    """What a parcel layer's ingest did."""

    dataset_id: int
    dataset: str
    city: str
    path: str
    layer: str
    source_crs: str
    parcel_count: int
    fields: dict[str, str | None]  # each known field: the source field it was read from
    warnings: list[str] = field(default_factory=list)
    replaced: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "parcels",
            "dataset_id": self.dataset_id,
            "dataset": self.dataset,
            "city": self.city,
            "path": self.path,
            "layer": self.layer,
            "source_crs": self.source_crs,
            "parcel_count": self.parcel_count,
            "fields": self.fields,
            "warnings": self.warnings,
            "replaced": self.replaced,
            "seconds": self.seconds,
        }


def _number(text: Any) -> float | None:
    """A limit's value: a number, or text such as '≤24m', '35%', '2.5' (None when empty)."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    s = str(text).strip()
    if not s:
        return None
    found = _NUMBER.findall(s.replace("，", ".").replace("。", "."))
    if len(found) != 1:
        raise ValueError(f"{s!r} is not one number")
    return float(found[0])


@dataclass
class _Layer:
    path: Path
    layer: str
    crs_name: str | None
    names: list[str]
    fids: Any
    wkb: Any
    columns: dict[str, Any]
    warnings: list[str]


def _read(path: Path, layer: str | None) -> _Layer:
    import pyogrio

    try:
        layers = [str(n) for n, _ in pyogrio.list_layers(path)]
    except Exception as exc:
        raise IngestError(path, f"not a readable vector file ({exc})") from None
    if not layers:
        raise IngestError(path, "the file has no layers")
    chosen = layer or layers[0]
    if chosen not in layers:
        raise IngestError(path, f"no layer {chosen!r}; layers: {', '.join(layers)}")
    warnings = []
    if len(layers) > 1:
        others = ", ".join(x for x in layers if x != chosen)
        warnings.append(f"read layer {chosen!r}; not read: {others} (use --layer)")
    try:
        meta, fids, wkb, values = pyogrio.raw.read(path, layer=chosen, return_fids=True)
    except Exception as exc:
        raise IngestError(path, f"layer {chosen!r} cannot be read ({exc})") from None
    names = [str(n) for n in meta["fields"]]
    return _Layer(
        path,
        chosen,
        meta.get("crs"),
        names,
        fids,
        wkb,
        dict(zip(names, values, strict=True)),
        warnings,
    )


def _mapping(src: _Layer, named: dict[str, str]) -> dict[str, str | None]:
    listed = ", ".join(src.names) if src.names else "the layer has no fields"
    out: dict[str, str | None] = {}
    for key, aliases in KNOWN_FIELDS.items():
        if key in named:
            if named[key] not in src.names:
                raise IngestError(
                    src.path,
                    f"--field {key}={named[key]}: layer {src.layer!r} has no field "
                    f"{named[key]!r} (fields: {listed})",
                )
            out[key] = named[key]
        else:
            out[key] = next((a for a in aliases if a in src.names), None)
    if not any(out[k] for k in LIMITS):
        src.warnings.append(
            "no limit field found (height limit, FAR, density, green ratio; fields: "
            f"{listed}): the parcels are stored without limits; name them with --field, e.g. "
            "--field height_limit=控高"
        )
    return out


def _limits(src: _Layer, mapping: dict[str, str | None], fid: list[str]) -> dict[str, list[Any]]:
    """Each limit's values, checked; fractions of one made per cent where a column is one."""
    out: dict[str, list[Any]] = {}
    for key in LIMITS:
        name = mapping[key]
        if name is None:
            out[key] = [None] * len(fid)
            continue
        values: list[float | None] = []
        for k, raw in enumerate(src.columns[name]):
            try:
                v = _number(plain_value(raw))
            except ValueError as exc:
                raise IngestError(src.path, f"feature {fid[k]}: field {name!r}: {exc}") from None
            if v is not None and not math.isfinite(v):
                raise IngestError(src.path, f"feature {fid[k]}: field {name!r} is not finite")
            values.append(v)
        given = [v for v in values if v is not None]
        if key in PERCENTS and given and max(given) <= 1.0 and any(v > 0 for v in given):
            values = [None if v is None else v * 100.0 for v in values]
            src.warnings.append(
                f"{name!r} holds fractions (every value at most 1): read as per cent x 100"
            )
        low, high, low_ok = RANGES[key]
        for k, v in enumerate(values):
            if v is None:
                continue
            if v > high or v < low or (v == low and not low_ok):
                unit = " %" if key in PERCENTS else (" m" if key == "height_limit" else "")
                raise IngestError(
                    src.path,
                    f"feature {fid[k]}: {key.replace('_', ' ')} {v:g}{unit} in field {name!r} "
                    f"cannot be right (allowed: {'from' if low_ok else 'above'} {low:g} to "
                    f"{high:g}{unit})",
                )
        out[key] = values
    return out


def _geometries(src: _Layer, to_storage: ToStorage, fid: list[str]) -> tuple[list[bytes], int]:
    """Each feature's polygons in longitude and latitude as 2D WKB; how many were repaired."""
    import shapely

    geoms = shapely.from_wkb(src.wkb, on_invalid="ignore")
    out: list[bytes] = []
    repaired = 0
    for k, g in enumerate(geoms):
        if g is None or g.is_empty:
            raise IngestError(src.path, f"feature {fid[k]} has no geometry")
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            raise IngestError(
                src.path, f"feature {fid[k]} is a {g.geom_type}, not a polygon: a parcel is an area"
            )
        g = shapely.force_2d(g)
        xy = shapely.get_coordinates(g)
        xyz = np.zeros((len(xy), 3))
        xyz[:, :2] = xy
        try:
            llh = to_storage.to_lonlath(xyz)
        except (IngestError, InvalidCRS) as exc:
            raise IngestError(src.path, f"feature {fid[k]}: {exc}") from None
        if not np.isfinite(llh[:, :2]).all():
            raise IngestError(src.path, f"feature {fid[k]}: its coordinates cannot be transformed")
        lonlat = shapely.set_coordinates(g, np.ascontiguousarray(llh[:, :2]))
        if not lonlat.is_valid:
            fixed = shapely.make_valid(lonlat)
            polygons = [p for p in getattr(fixed, "geoms", [fixed]) if p.geom_type == "Polygon"]
            if not polygons:
                raise IngestError(src.path, f"feature {fid[k]}: its polygon has no area")
            lonlat = shapely.MultiPolygon(polygons)
            repaired += 1
        if lonlat.geom_type == "Polygon":
            lonlat = shapely.MultiPolygon([lonlat])
        out.append(shapely.to_wkb(lonlat, output_dimension=2, include_srid=False))
    return out, repaired


def ingest_parcels(
    engine: Engine,
    path: Path,
    city: str,
    *,
    crs: str | None = None,
    name: str | None = None,
    layer: str | None = None,
    fields: dict[str, str] | None = None,
    city_names: tuple[str | None, str | None] = (None, None),
) -> ParcelReport:
    """Read a planning layer's parcels into `city` as one dataset, in one transaction.

    Raises:
        IngestError: the file, a named field, a feature's geometry or a value is wrong; the
            message names the file, the feature (layer.fid) and the field.
    """
    started = time.perf_counter()
    if not city or len(city) > 64 or not city.replace("-", "").replace("_", "").isalnum():
        raise IngestError(city, "a city code is letters, digits, '-' or '_' (at most 64)")
    src = _read(path, layer)
    if len(src.wkb) == 0:
        raise IngestError(path, f"layer {src.layer!r} has no features")
    mapping = _mapping(src, fields or {})
    fid = [f"{src.layer}.{int(f)}" for f in src.fids]
    limits = _limits(src, mapping, fid)
    crs_name = crs or src.crs_name
    if not crs_name:
        raise IngestError(path, "the layer declares no CRS: give one with --crs, e.g. EPSG:4548")
    try:
        source = parse_crs(crs_name)
        to_storage = ToStorage(source, where=str(path))
    except InvalidCRS as exc:
        raise IngestError(path, str(exc)) from None
    label = crs_label(source)
    if crs and src.crs_name:
        try:
            same = parse_crs(crs) == parse_crs(src.crs_name)
        except InvalidCRS:
            same = False
        if not same:
            src.warnings.append(f"--crs {crs} overrides the layer's CRS {src.crs_name}")
    height_notes = {to_storage.heights.note}  # parcels are plane: no word on heights
    wkb, repaired = _geometries(src, to_storage, fid)
    height_notes.add(to_storage.heights.note)
    src.warnings += [w for w in to_storage.warnings if w not in height_notes]
    if repaired:
        src.warnings.append(
            f"{repaired} parcels had invalid polygons (rings that cross or touch): repaired "
            "(GEOS make_valid), their polygon parts kept"
        )
    rows = []
    for k in range(len(wkb)):
        attributes = {n: plain_value(src.columns[n][k]) for n in src.names}
        code, use = (mapping[c] for c in ("code", "land_use"))
        rows.append(
            (
                fid[k],
                None if code is None or attributes[code] is None else str(attributes[code]),
                None if use is None or attributes[use] is None else str(attributes[use]),
                *(limits[key][k] for key in LIMITS),
                orjson.dumps(attributes).decode(),
                wkb[k],
            )
        )
    dataset = name or path.name
    raw = engine.raw_connection()
    try:
        pg: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        try:
            ensure_city(pg, city, label, *city_names)
            dataset_id, replaced = replace_dataset(
                pg,
                city,
                dataset,
                {
                    "source_path": str(path.resolve()),
                    "format": "Parcels",
                    "format_version": src.layer,
                    "source_crs": label,
                    "checksum": "",
                    "appearance": {},
                    "metadata": {"layer": src.layer, "fields": mapping},
                },
            )
            with pg.cursor() as cur:
                cur.executemany(
                    "INSERT INTO planning_parcel (city_code, dataset_id, source_id, code, land_use,"
                    " height_limit, far_limit, density_limit, green_ratio, attributes, geom, area)"
                    " SELECT %s, %s, s, c, u, h, f, d, g, a::jsonb, geom,"
                    " ST_Area(geom::geography) FROM (SELECT %s s, %s c, %s u, %s::float8 h,"
                    " %s::float8 f, %s::float8 d, %s::float8 g, %s a,"
                    " ST_SetSRID(ST_GeomFromWKB(%s), 4326) geom) x",
                    [(city, dataset_id, *r) for r in rows],
                )
            finish_dataset(
                pg,
                city,
                dataset_id,
                {
                    "object_count": len(rows),
                    "counts": {"by_type": {"Parcel": len(rows)}, "by_lod": {}},
                    "warnings": src.warnings,
                    "attribute_keys": set(src.names),
                    "appearance": {},
                    "metadata": {"layer": src.layer, "fields": mapping},
                    "checksum": file_checksum(path),
                },
            )
            pg.commit()
        except BaseException as exc:
            pg.rollback()
            if isinstance(exc, psycopg.OperationalError):
                raise DatabaseUnavailable(f"the database connection failed: {exc}") from None
            raise
    finally:
        raw.close()
    return ParcelReport(
        dataset_id,
        dataset,
        city,
        str(path),
        src.layer,
        label,
        len(rows),
        mapping,
        src.warnings,
        replaced,
        round(time.perf_counter() - started, 3),
    )
