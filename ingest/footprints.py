"""Building footprints with heights (GeoJSON, GeoPackage, Shapefile, through GDAL by pyogrio),
extruded to LoD1 solids.

Each feature becomes a Building: a solid whose bottom is the footprint at its base elevation and
whose top is `base + height`, with GroundSurface, WallSurface and RoofSurface semantics; holes
and multipolygons are kept. The height is an attribute (`--height-attr`), or floors x storey
height (`--floors-attr`, `--storey-height`); the base is an attribute (`--base-attr`), else the
footprint's own z, else 0. A feature with no usable height is kept as an LoD0 footprint and
counted in the ingest report. Every source attribute is kept. Features are read in batches, so
memory stays bounded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.model import ReadOptions, SourceGeometry, SourceObject

HEIGHT_NAMES = ("height", "HAUTEUR", "Height", "HEIGHT", "measuredHeight", "building:height")
FLOOR_NAMES = ("floors", "NB_ETAGES", "building:levels", "levels", "storeys", "FLOORS")
BATCH = 5000
MAX_HEIGHT_M = 1000.0  # the tallest building is 828 m; more is a unit or data error
SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb"}


def sniff(path: Path, head: bytes) -> bool:
    """GeoPackage, Shapefile, FlatGeobuf, or GeoJSON (a Feature or FeatureCollection)."""
    suffix = path.suffix.lower()
    if head.startswith(b"SQLite format 3") and suffix == ".gpkg":
        return True
    if suffix == ".shp" and head[:4] == b"\x00\x00\x27\x0a":
        return True
    if head.startswith(b"fgb\x03"):
        return True
    text = head[:4096].decode("utf-8", errors="ignore").replace(" ", "")
    return text.lstrip().startswith("{") and (
        '"type":"FeatureCollection"' in text or '"type":"Feature"' in text
    )


def plain_value(value: Any) -> Any:
    """A field value as plain JSON."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):  # a list property (GeoJSON arrays)
        return [plain_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).replace(",", ".")) if isinstance(value, str) else float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class FootprintReader:
    """A vector layer of footprints, read in batches and extruded."""

    format = "Footprints"
    axis_order = "xy"  # GDAL gives x = easting / longitude

    def __init__(self, path: Path, options: ReadOptions | None = None) -> None:
        self.path = str(path)
        self._path = path
        self.options = options or ReadOptions()
        import pyogrio  # GDAL's bindings: only when a vector file is read (a fifth of a start)

        try:
            layers = [str(name) for name, _ in pyogrio.list_layers(path)]
        except Exception as exc:  # GDAL raises its own kinds
            raise IngestError(path, f"not a readable vector file ({exc})") from None
        if not layers:
            raise IngestError(path, "the file has no layers")
        self.layer = self.options.layer or layers[0]
        if self.layer not in layers:
            raise IngestError(path, f"no layer {self.layer!r}; layers: {', '.join(layers)}")
        try:
            info = pyogrio.read_info(path, layer=self.layer)
        except Exception as exc:
            raise IngestError(path, f"layer {self.layer!r} cannot be read ({exc})") from None
        self.format_version: str | None = str(info.get("driver") or "")
        self.crs_name: str | None = info.get("crs")
        self.fields = [str(f) for f in info["fields"]]
        self.total_objects: int | None = int(info["features"]) if info["features"] >= 0 else None
        self.metadata: dict[str, Any] = {"layer": self.layer, "fields": self.fields}
        self.appearance: dict[str, Any] = {}
        self.warnings: list[str] = []
        if len(layers) > 1:
            others = ", ".join(x for x in layers if x != self.layer)
            self.warnings.append(f"read layer {self.layer!r}; not read: {others} (use --layer)")
        self.height_attr, self.floors_attr = self._height_fields()
        self.base_attr = self.options.base_attr
        if self.base_attr and self.base_attr not in self.fields:
            raise IngestError(
                path, f"--base-attr {self.base_attr!r} is not a field ({self._listed()})"
            )
        self.metadata["extrusion"] = {
            "height_attr": self.height_attr,
            "floors_attr": self.floors_attr,
            "storey_height": self.options.storey_height if self.floors_attr else None,
            "base_attr": self.base_attr,
        }
        self._no_height = 0
        self._no_geometry = 0

    def _listed(self) -> str:
        return "fields: " + ", ".join(self.fields) if self.fields else "the layer has no fields"

    def _height_fields(self) -> tuple[str | None, str | None]:
        o = self.options
        for given, flag in ((o.height_attr, "--height-attr"), (o.floors_attr, "--floors-attr")):
            if given and given not in self.fields:
                raise IngestError(self._path, f"{flag} {given!r} is not a field ({self._listed()})")
        if o.height_attr or o.floors_attr:
            return o.height_attr, o.floors_attr
        height = next((f for f in HEIGHT_NAMES if f in self.fields), None)
        floors = None if height else next((f for f in FLOOR_NAMES if f in self.fields), None)
        if height is None and floors is None:
            self.warnings.append(
                "no height field found (looked for "
                + ", ".join(HEIGHT_NAMES + FLOOR_NAMES)
                + "): every feature is kept as an LoD0 footprint; give --height-attr or "
                "--floors-attr to extrude"
            )
        return height, floors

    def objects(self) -> Iterator[SourceObject]:
        """Yield one Building per feature, in batches of features."""
        import pyogrio
        import shapely

        skip = 0
        # GDAL reads GeoJSON whole anyway, and skipping features restarts from the top: read it
        # in one call; GeoPackage and Shapefile are read in pages
        page = None if self.format_version == "GeoJSON" else BATCH
        while True:
            try:
                with warnings.catch_warnings(record=True) as said:
                    warnings.simplefilter("always")
                    meta, fids, wkb, fields = pyogrio.raw.read(
                        self._path,
                        layer=self.layer,
                        skip_features=skip,
                        max_features=page,
                        return_fids=True,
                    )
            except Exception as exc:
                raise IngestError(self._path, f"reading features from {skip}: {exc}") from None
            for w in said:  # GDAL's own remarks, e.g. duplicate feature ids it renumbered
                text = f"GDAL: {w.message}"
                if text not in self.warnings:
                    self.warnings.append(text)
            if len(wkb) == 0:
                break
            names = [str(n) for n in meta["fields"]]
            geoms = shapely.from_wkb(wkb, on_invalid="ignore")
            for k in range(len(wkb)):
                attributes = {n: plain_value(col[k]) for n, col in zip(names, fields, strict=True)}
                yield self._building(f"{self.layer}.{int(fids[k])}", geoms[k], attributes)
            skip += len(wkb)
            if page is None or len(wkb) < page:
                break
        if self._no_height:
            what = self.height_attr or self.floors_attr
            self.warnings.append(
                f"{self._no_height} features have no usable height"
                + (f" in {what!r}" if what else "")
                + " (missing, not a number, not above 0 or above 1000 m): kept as LoD0 footprints"
            )
        if self._no_geometry and self._no_geometry == skip:
            raise IngestError(
                self._path,
                f"no feature has a polygon geometry ({skip} features): this is not a footprint "
                "layer",
            )
        if self._no_geometry:
            self.warnings.append(
                f"{self._no_geometry} features have no polygon geometry: kept with attributes only"
            )

    def close(self) -> None:
        """Nothing to release: each batch opens and closes the file."""

    def _height(self, attributes: dict[str, Any]) -> float | None:
        if self.height_attr:
            h = _number(attributes.get(self.height_attr))
        elif self.floors_attr:
            floors = _number(attributes.get(self.floors_attr))
            h = floors * self.options.storey_height if floors is not None else None
        else:
            return None
        return h if h is not None and 0 < h <= MAX_HEIGHT_M else None

    def _building(self, fid: str, geom: Any, attributes: dict[str, Any]) -> SourceObject:
        polygons = _polygons(geom)
        obj = SourceObject(fid, "Building", attributes, [], [], [])
        if not polygons:
            self._no_geometry += 1
            return obj
        height = self._height(attributes)
        base = _number(attributes.get(self.base_attr)) if self.base_attr else None
        if base is None:
            zs = [r[:, 2] for p in polygons for r in p if r.shape[1] == 3]
            base = float(np.min(np.concatenate(zs))) if zs else 0.0
        if height is None:
            if self.height_attr or self.floors_attr:
                self._no_height += 1
            obj.geometries.append(_footprint(polygons, base))
        else:
            obj.geometries.append(_extruded(polygons, base, base + height))
        return obj


def _polygons(geom: Any) -> list[list[NDArray[np.float64]]]:
    """Each polygon as [exterior, *holes], exterior counter-clockwise, holes clockwise, rings
    not closed, x/y only."""
    import shapely

    if geom is None or shapely.is_empty(geom):
        return []
    parts = shapely.get_parts(geom) if geom.geom_type.startswith("Multi") else [geom]
    out = []
    for p in parts:
        if p.geom_type != "Polygon" or p.is_empty:
            continue
        p = (
            shapely.orient_polygons(p)
            if hasattr(shapely, "orient_polygons")
            else shapely.geometry.polygon.orient(p)
        )
        rings = [np.asarray(p.exterior.coords), *(np.asarray(r.coords) for r in p.interiors)]
        rings = [r[:-1] for r in rings if len(r) >= 4]
        if rings:
            out.append(rings)
    return out


def _flat(rings: list[NDArray[np.float64]], z: float, reverse: bool) -> list[NDArray[np.float64]]:
    return [
        np.column_stack((r[::-1, :2] if reverse else r[:, :2], np.full(len(r), z))) for r in rings
    ]


def _footprint(polygons: list[list[NDArray[np.float64]]], base: float) -> SourceGeometry:
    faces = [_flat(rings, base, False) for rings in polygons]
    return _geometry("MultiSurface", "0", faces, None)


def _extruded(polygons: list[list[NDArray[np.float64]]], base: float, top: float) -> SourceGeometry:
    faces: list[list[NDArray[np.float64]]] = []
    semantics: list[str] = []
    for rings in polygons:
        faces.append(_flat(rings, base, True))  # facing down
        semantics.append("GroundSurface")
        faces.append(_flat(rings, top, False))
        semantics.append("RoofSurface")
        for ring in rings:
            xy = ring[:, :2]
            nxt = np.roll(xy, -1, axis=0)
            for a, b in zip(xy, nxt, strict=True):
                if np.array_equal(a, b):
                    continue
                faces.append(
                    [
                        np.array(
                            [
                                [a[0], a[1], base],
                                [b[0], b[1], base],
                                [b[0], b[1], top],
                                [a[0], a[1], top],
                            ]
                        )
                    ]
                )
                semantics.append("WallSurface")
    return _geometry("Solid", "1", faces, semantics)


def _geometry(
    gtype: str, lod: str, faces: list[list[NDArray[np.float64]]], semantics: list[str] | None
) -> SourceGeometry:
    rings = [r for f in faces for r in f]
    vertices = np.vstack(rings)
    structure: dict[str, Any] = {"type": gtype, "lod": lod, "source": "footprint extrusion"}
    if semantics:
        kinds = sorted(set(semantics))
        structure["semantics"] = {
            "surfaces": [{"type": k} for k in kinds],
            "values": [kinds.index(s) for s in semantics],
        }
    return SourceGeometry(
        type=gtype,
        lod=lod,
        kind="surface",
        vertices=vertices,
        indices=range(len(vertices)),
        ring_sizes=[len(r) for r in rings],
        polygon_rings=[len(f) for f in faces],
        structure=structure,
        surface_semantics=list(semantics) if semantics else None,
    )
