"""CityJSON 1.0, 1.1, 2.0 documents and CityJSONSeq, read one city object at a time."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from cim.errors import IngestError
from ingest.cityjson_geometry import GeometryProblem, Templates, decode_geometry
from ingest.cityjson_vertices import drop_pages, first_byte, parse_vertices
from ingest.jsonscan import LayoutError, scan_layout
from ingest.model import SourceObject

VERSIONS = {"1.0", "1.1", "2.0"}
OBJECT_TYPES = {
    "Bridge",
    "BridgePart",
    "BridgeInstallation",
    "BridgeConstructiveElement",
    "BridgeRoom",
    "BridgeFurniture",
    "Building",
    "BuildingPart",
    "BuildingInstallation",
    "BuildingConstructiveElement",
    "BuildingFurniture",
    "BuildingStorey",
    "BuildingRoom",
    "BuildingUnit",
    "CityFurniture",
    "CityObjectGroup",
    "GenericCityObject",
    "LandUse",
    "OtherConstruction",
    "PlantCover",
    "SolitaryVegetationObject",
    "TINRelief",
    "TransportSquare",
    "Railway",
    "Road",
    "Tunnel",
    "TunnelPart",
    "TunnelInstallation",
    "TunnelConstructiveElement",
    "TunnelHollowSpace",
    "TunnelFurniture",
    "WaterBody",
    "Waterway",
}
_OWN_MEMBERS = {"type", "attributes", "geometry", "parents", "children"}


def _version(doc: dict[str, Any], path: Path) -> str:
    version = doc.get("version")
    if not isinstance(version, str) or version not in VERSIONS:
        raise IngestError(
            path, f"unsupported CityJSON version {version!r} (supported: 1.0, 1.1, 2.0)"
        )
    return version


def _transform(
    doc: dict[str, Any], path: Path, version: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t = doc.get("transform")
    if t is None:
        if version != "1.0":
            raise IngestError(path, f"CityJSON {version} requires a 'transform' member")
        return np.ones(3), np.zeros(3)
    try:
        scale = np.array(t["scale"], dtype=np.float64)
        translate = np.array(t["translate"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise IngestError(
            path, "'transform' must have 'scale' and 'translate' of 3 numbers"
        ) from None
    if (
        scale.shape != (3,)
        or translate.shape != (3,)
        or not np.all(np.isfinite(scale))
        or not np.all(np.isfinite(translate))
        or np.any(scale == 0)
    ):
        raise IngestError(path, "'transform' must have 'scale' and 'translate' of 3 finite numbers")
    return scale, translate


def _crs_name(doc: dict[str, Any]) -> str | None:
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        return None
    rs = meta.get("referenceSystem")
    if rs is None and isinstance(meta.get("crs"), dict):  # CityJSON 1.0 drafts
        epsg = meta["crs"].get("epsg")
        rs = f"EPSG:{epsg}" if epsg else None
    return rs if isinstance(rs, str) and rs.strip() else None


def _member_dict(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _root_members(doc: dict[str, Any]) -> dict[str, Any]:
    """Everything at the file's root but the objects, vertices and appearance (stored apart):
    `metadata`, `transform`, `geometry-templates`, `extensions` and any extension member."""
    skip = {"type", "version", "CityObjects", "vertices", "appearance"}
    return {k: v for k, v in doc.items() if k not in skip}


def _templates(doc: dict[str, Any], path: Path) -> Templates | None:
    """The file's geometry templates (textured ones with the file's texture coordinates)."""
    gt = doc.get("geometry-templates")
    if gt is None:
        return None
    try:
        verts = np.array(gt["vertices-templates"], dtype=np.float64).reshape(-1, 3)
        templates = list(gt["templates"])
    except (KeyError, TypeError, ValueError):
        raise IngestError(
            path, "'geometry-templates' needs 'templates' and 'vertices-templates'"
        ) from None
    return Templates(templates, verts, _uv(_member_dict(doc, "appearance")))


def _uv(appearance: Any) -> NDArray[np.float64] | None:
    if isinstance(appearance, dict) and appearance.get("vertices-texture"):
        try:
            return np.array(appearance["vertices-texture"], dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            return None
    return None


def decode_object(
    path: Path,
    oid: Any,
    obj: Any,
    vertices: NDArray[np.float64],
    templates: Templates | None,
    uv: NDArray[np.float64] | None,
) -> SourceObject:
    """One CityObject to a `SourceObject`.

    Raises:
        IngestError: the object breaks the CityJSON rules; the message names it.
    """
    if not isinstance(oid, str) or not oid:
        raise IngestError(path, f"city object id must be a non-empty string, got {oid!r}")
    if not isinstance(obj, dict):
        raise IngestError(path, "a city object must be a JSON object", oid)
    otype = obj.get("type")
    if not isinstance(otype, str) or not (otype in OBJECT_TYPES or otype.startswith("+")):
        raise IngestError(path, f"unknown city object type {otype!r}", oid)
    attributes = obj.get("attributes", {})
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise IngestError(path, "'attributes' must be a JSON object", oid)
    relations = []
    for key in ("parents", "children"):
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise IngestError(path, f"'{key}' must be an array of city object ids", oid)
        relations.append(value)
    geometry = obj.get("geometry", [])
    if not isinstance(geometry, list):
        raise IngestError(path, "'geometry' must be an array", oid)
    geometries = []
    for n, geom in enumerate(geometry):
        try:
            geometries.append(decode_geometry(geom, vertices, templates, uv))
        except GeometryProblem as exc:
            raise IngestError(path, f"geometry {n}: {exc}", oid) from None
    extra = {k: v for k, v in obj.items() if k not in _OWN_MEMBERS}
    return SourceObject(oid, otype, attributes, relations[0], relations[1], geometries, extra)


class CityJsonReader:
    """A CityJSON document, streamed: one pass finds its layout, then objects are parsed singly."""

    format = "CityJSON"
    axis_order = "xy"

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            layout = scan_layout(self._file, "CityObjects")
        except LayoutError as exc:
            self._file.close()
            raise IngestError(path, f"not valid JSON: {exc}") from None
        self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self._layout = layout
        small = {}
        for key, (a, b) in layout.members.items():
            if key in ("CityObjects", "vertices"):
                continue
            try:
                small[key] = orjson.loads(self._mm[a:b])
            except orjson.JSONDecodeError as exc:
                raise IngestError(path, f"member {key!r} is not valid JSON: {exc}") from None
        if small.get("type") != "CityJSON":
            raise IngestError(path, f"not a CityJSON file ('type' is {small.get('type')!r})")
        self.format_version: str | None = _version(small, path)
        for key in ("CityObjects", "vertices"):
            if key not in layout.members:
                raise IngestError(path, f"CityJSON requires a '{key}' member")
        self._scale, self._translate = _transform(small, path, str(self.format_version))
        self.crs_name: str | None = _crs_name(small)
        self.metadata: dict[str, Any] = _root_members(small)
        self.appearance: dict[str, Any] = _member_dict(small, "appearance")
        self._templates = _templates(small, path)
        self._uv = _uv(self.appearance)
        self.warnings: list[str] = []
        a, b = layout.members["CityObjects"]
        if first_byte(self._mm, a, b) != b"{":
            raise IngestError(path, "'CityObjects' must be a JSON object")
        count = layout.entry_count
        if (
            count == 1
            and not self._mm[layout.entry_separators[0] + 1 : layout.entry_separators[1]].strip()
        ):
            count = 0  # "CityObjects": {}
        self._count = count
        self.total_objects: int | None = count
        va, vb = layout.members["vertices"]
        if first_byte(self._mm, va, vb) != b"[":
            raise IngestError(path, "'vertices' must be an array")
        self._vertices = parse_vertices(self._mm, va, vb, self._scale, self._translate, path)
        drop_pages(self._mm, va, vb)

    def objects(self) -> Iterator[SourceObject]:
        """Yield the city objects in file order."""
        seps = self._layout.entry_separators
        mm = self._mm
        dropped_to = seps[0] if len(seps) else 0
        for n in range(self._count):
            a, b = seps[n], seps[n + 1]
            try:
                entry = orjson.loads(b"{" + mm[a + 1 : b] + b"}")
            except orjson.JSONDecodeError as exc:
                raise IngestError(
                    self._path, f"city object number {n + 1} is not valid JSON: {exc}"
                ) from None
            ((oid, obj),) = entry.items()
            yield decode_object(self._path, oid, obj, self._vertices, self._templates, self._uv)
            if b - dropped_to > (64 << 20):  # keep resident memory bounded on huge files
                drop_pages(mm, dropped_to, b)
                spooled = getattr(self._vertices, "_mmap", None)
                if spooled is not None:
                    drop_pages(spooled, 0, len(spooled))
                dropped_to = b

    def close(self) -> None:
        """Release the file and any spooled vertices."""
        self._vertices = np.zeros((0, 3))
        self._mm.close()
        self._file.close()


class CityJsonSeqReader:
    """A CityJSONSeq file: a CityJSON header line, then one CityJSONFeature per line."""

    format = "CityJSONSeq"
    axis_order = "xy"

    def __init__(self, path: Path, max_line_bytes: int) -> None:
        self.path = str(path)
        self._path = path
        self._max = max_line_bytes
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        header = self._line(1)
        if header is None:
            raise IngestError(path, "the file is empty")
        if not isinstance(header, dict) or header.get("type") != "CityJSON":
            raise IngestError(
                path, "line 1: the first line of a CityJSONSeq must be a CityJSON object"
            )
        self.format_version: str | None = _version(header, path)
        self._scale, self._translate = _transform(header, path, str(self.format_version))
        self.crs_name: str | None = _crs_name(header)
        self.metadata: dict[str, Any] = _root_members(header)
        self.appearance: dict[str, Any] = _member_dict(header, "appearance")
        self._templates = _templates(header, path)
        self.warnings: list[str] = []
        self.total_objects: int | None = None
        self._line_no = 1

    def _line(self, number: int) -> Any:
        raw = self._file.readline(self._max + 1)
        while raw and not raw.strip():
            raw = self._file.readline(self._max + 1)
        if not raw:
            return None
        if len(raw) > self._max and not raw.endswith(b"\n"):
            raise IngestError(
                self._path,
                f"line {number}: longer than the limit of {self._max} bytes "
                "(CIM_INGEST_MAX_LINE_BYTES)",
            )
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise IngestError(self._path, f"line {number}: not valid JSON: {exc}") from None

    def objects(self) -> Iterator[SourceObject]:
        """Yield the city objects of every feature line, in file order."""
        while True:
            self._line_no += 1
            feature = self._line(self._line_no)
            if feature is None:
                return
            where = f"line {self._line_no}"
            if not isinstance(feature, dict) or feature.get("type") != "CityJSONFeature":
                raise IngestError(self._path, f"{where}: expected a CityJSONFeature")
            objs = feature.get("CityObjects")
            if not isinstance(objs, dict):
                raise IngestError(self._path, f"{where}: 'CityObjects' must be a JSON object")
            try:
                raw = np.array(feature.get("vertices", []), dtype=np.float64).reshape(-1, 3)
            except (TypeError, ValueError):
                raise IngestError(
                    self._path, f"{where}: 'vertices' must be an array of [x, y, z] triples"
                ) from None
            verts = raw * self._scale + self._translate
            if not np.all(np.isfinite(verts)):
                raise IngestError(self._path, f"{where}: 'vertices' holds a non-finite coordinate")
            uv = _uv(feature.get("appearance")) if "appearance" in feature else None
            for oid, obj in objs.items():
                yield decode_object(self._path, oid, obj, verts, self._templates, uv)

    def close(self) -> None:
        """Release the file."""
        self._file.close()


def sniff(path: Path, head: bytes) -> str | None:
    """'CityJSON' or 'CityJSONSeq' when the first bytes of a file say so, else None."""
    text = head.lstrip()
    if not text.startswith(b"{"):
        return None
    first_line = text.split(b"\n", 1)[0]
    try:
        doc = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("type") == "CityJSON":
        rest = text[len(first_line) :].strip()
        return (
            "CityJSONSeq"
            if rest.startswith(b"{")
            or (not rest and not doc.get("CityObjects") and path.suffix == ".jsonl")
            else "CityJSON"
        )
    if b'"CityJSON"' in text[:65536] or b'"CityObjects"' in text[:65536]:
        return "CityJSON"
    return None
