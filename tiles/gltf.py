"""GLB writing: one triangle mesh (plus points) with feature ids and a property table, as 3D Tiles
1.1 content (glTF 2.0 with EXT_mesh_features and EXT_structural_metadata).

Pure: arrays in, bytes out. Positions are float32 offsets from the tile centre in Earth-centred
axes; glTF is Y-up, so axes are turned here (x, y, z) -> (x, z, -y) and the centre goes into the
node translation, which 3D Tiles turns back to Z-up.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from tiles.points import PointAttributes
from tiles.properties import POINT_CLASS, POINT_PROPERTIES

ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT = 5126
BYTE = 5120
UNSIGNED_BYTE = 5121
SHORT = 5122
UNSIGNED_SHORT = 5123
UNSIGNED_INT = 5125
TRIANGLES = 4
LINEAR = 9729
LINEAR_MIPMAP_LINEAR = 9987
REPEAT = 10497
POINTS = 0
LINES = 1


def _empty(width: int, dtype: type) -> NDArray[Any]:
    return np.zeros((0, width), dtype=dtype)


@dataclass
class TexturedPart:
    """Triangles that show one texture image: its own vertices, with (u, v) in glTF's
    convention (origin at the image's top left)."""

    image: bytes
    mime: str  # image/jpeg or image/png
    positions: NDArray[np.float32]  # (n, 3) offsets from the tile centre, Earth-centred axes
    normals: NDArray[np.float32]
    uvs: NDArray[np.float32]  # (n, 2)
    feature_ids: NDArray[np.float32]
    indices: NDArray[np.uint32]


@dataclass
class Geometry:
    """What a tile draws. `feature_ids` give each vertex its row in the property table."""

    center: NDArray[np.float64]  # Earth-centred, metres
    positions: NDArray[np.float32]  # (n, 3) offsets from center, Earth-centred axes
    normals: NDArray[np.float32]  # (n, 3) unit, Earth-centred axes
    colors: NDArray[np.uint8]  # (n, 4) RGBA
    feature_ids: NDArray[np.float32]  # (n,)
    indices: NDArray[np.uint32]  # (m,) triangle corners
    point_positions: NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, 3), np.float32)
    )
    point_colors: NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 4), np.uint8))
    line_positions: NDArray[np.float32] = field(default_factory=lambda: _empty(3, np.float32))
    line_indices: NDArray[np.uint32] = field(default_factory=lambda: np.zeros(0, np.uint32))
    line_feature_ids: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    point_feature_ids: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    textured: list[TexturedPart] = field(default_factory=list)
    point_attributes: PointAttributes | None = None  # point clouds: classification, intensity


def _y_up(v: NDArray[Any]) -> NDArray[Any]:
    return np.column_stack((v[:, 0], v[:, 2], -v[:, 1])) if len(v) else v.reshape(0, 3)


class _Builder:
    """Accumulates buffer views and accessors over one binary chunk (8-byte aligned views)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.length = 0
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        pad = (-self.length) % 8
        if pad:
            self.chunks.append(b"\x00" * pad)
            self.length += pad
        view: dict[str, Any] = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.chunks.append(data)
        self.length += len(data)
        self.views.append(view)
        return len(self.views) - 1

    def accessor(
        self,
        array: NDArray[Any],
        component: int,
        kind: str,
        target: int,
        normalized: bool = False,
        bounds: bool = False,
    ) -> int:
        """An accessor over `array`; rows wider than `kind` (padding to 4 bytes) set a stride."""
        width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[kind]
        view = self.view(np.ascontiguousarray(array).tobytes(), target)
        if array.ndim == 2 and array.shape[1] > width:
            self.views[view]["byteStride"] = array.shape[1] * array.itemsize
        acc: dict[str, Any] = {
            "bufferView": view,
            "componentType": component,
            "count": int(len(array)),
            "type": kind,
        }
        if normalized:
            acc["normalized"] = True
        if bounds:
            used = array[:, :width] if array.ndim == 2 else array[:, None]
            lo, hi = column_bounds(used)
            acc["min"], acc["max"] = lo.tolist(), hi.tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def binary(self) -> bytes:
        data = b"".join(self.chunks)
        return data + b"\x00" * ((-len(data)) % 8)


def _quantizer(geometry: Geometry) -> tuple[NDArray[np.float64], float]:
    """Offset and uniform scale that map every position of the tile into [-1, 1]^3 (a uniform
    scale leaves normals undistorted)."""
    every = np.concatenate(
        [
            _y_up(geometry.positions),
            _y_up(geometry.point_positions),
            _y_up(geometry.line_positions),
            *(_y_up(part.positions) for part in geometry.textured),
        ]
    )
    if not len(every):
        return np.zeros(3), 1.0
    lo, hi = column_bounds(every)
    return (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)


def column_bounds(array: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Least and greatest value of each column of an (n, k) array, column by column: NumPy's
    min(axis=0) over few columns is some 15 times slower (it took a fifth of a point tile)."""
    lo = np.array([array[:, k].min() for k in range(array.shape[1])], dtype=np.float64)
    hi = np.array([array[:, k].max() for k in range(array.shape[1])], dtype=np.float64)
    return lo, hi


def _positions(
    b: _Builder, positions: NDArray[np.float32], offset: NDArray[np.float64], scale: float | None
) -> int:
    """POSITION: float32, or normalized int16 padded to 8 bytes (KHR_mesh_quantization)."""
    p = _y_up(positions).astype(np.float64)
    if scale is None:
        return b.accessor(p.astype("<f4"), FLOAT, "VEC3", ARRAY_BUFFER, bounds=True)
    q = np.zeros((len(p), 4), dtype="<i2")
    q[:, :3] = np.clip(np.round((p - offset) / scale * 32767), -32767, 32767)
    return b.accessor(q, SHORT, "VEC3", ARRAY_BUFFER, normalized=True, bounds=True)


def _normals(b: _Builder, normals: NDArray[np.float32], quantized: bool) -> int:
    """NORMAL: float32, or normalized int8 padded to 4 bytes (renormalised after rounding)."""
    n = _y_up(normals).astype(np.float64)
    if not quantized:
        return b.accessor(n.astype("<f4"), FLOAT, "VEC3", ARRAY_BUFFER)
    q = np.zeros((len(n), 4), dtype="i1")
    q[:, :3] = np.clip(np.round(n * 127), -127, 127)
    return b.accessor(q, BYTE, "VEC3", ARRAY_BUFFER, normalized=True)


def _indices(b: _Builder, indices: NDArray[np.uint32], small: bool) -> int:
    if small and (not len(indices) or int(indices.max()) < 65535):
        return b.accessor(indices.astype("<u2"), UNSIGNED_SHORT, "SCALAR", ELEMENT_ARRAY_BUFFER)
    return b.accessor(indices.astype("<u4"), UNSIGNED_INT, "SCALAR", ELEMENT_ARRAY_BUFFER)


def write_glb(
    geometry: Geometry,
    feature_count: int,
    metadata: dict[str, Any] | None,
    metadata_views: list[bytes],
    batch_ids: bool = False,
) -> bytes:
    """A GLB of the geometry; `metadata` is the EXT_structural_metadata object whose property
    tables refer to `metadata_views` by index (0, 1, ...), renumbered here.

    3D Tiles 1.1 content is quantized (KHR_mesh_quantization: int16 positions, int8 normals,
    16-bit indices where they fit). With `batch_ids` the feature ids go in a `_BATCHID`
    attribute, as 3D Tiles 1.0 (B3DM) wants, floats are kept and no 1.1 extension is used.
    """
    id_attribute = "_BATCHID" if batch_ids else "_FEATURE_ID_0"
    quantized = not batch_ids
    offset, scale = _quantizer(geometry)
    qscale = scale if quantized else None
    b = _Builder()
    primitives: list[dict[str, Any]] = []
    features = {
        "EXT_mesh_features": {
            "featureIds": [
                {
                    "featureCount": feature_count,
                    "attribute": 0,
                    **({"propertyTable": 0} if metadata else {}),
                }
            ]
        }
    }
    extension = {} if batch_ids else {"extensions": features}
    if len(geometry.indices):
        attributes = {
            "POSITION": _positions(b, geometry.positions, offset, qscale),
            "NORMAL": _normals(b, geometry.normals, quantized),
            "COLOR_0": b.accessor(
                geometry.colors, UNSIGNED_BYTE, "VEC4", ARRAY_BUFFER, normalized=True
            ),
            id_attribute: b.accessor(
                geometry.feature_ids.astype("<f4"), FLOAT, "SCALAR", ARRAY_BUFFER
            ),
        }
        primitives.append(
            {
                "attributes": attributes,
                "indices": _indices(b, geometry.indices, quantized),
                "material": 0,
                "mode": TRIANGLES,
                **extension,
            }
        )
    for k, part in enumerate(geometry.textured):
        attributes = {
            "POSITION": _positions(b, part.positions, offset, qscale),
            "NORMAL": _normals(b, part.normals, quantized),
            "TEXCOORD_0": b.accessor(part.uvs.astype("<f4"), FLOAT, "VEC2", ARRAY_BUFFER),
            id_attribute: b.accessor(part.feature_ids.astype("<f4"), FLOAT, "SCALAR", ARRAY_BUFFER),
        }
        primitives.append(
            {
                "attributes": attributes,
                "indices": _indices(b, part.indices, quantized),
                "material": 2 + k,
                "mode": TRIANGLES,
                **extension,
            }
        )
    # points: those with point-cloud attributes (the first ones) and the others, apart
    with_attributes = (
        0
        if geometry.point_attributes is None or not metadata
        else (len(geometry.point_attributes.classification))
    )
    for a, z in ((0, with_attributes), (with_attributes, len(geometry.point_positions))):
        if z <= a:
            continue
        attributes = {
            "POSITION": _positions(b, geometry.point_positions[a:z], offset, qscale),
            "COLOR_0": b.accessor(
                geometry.point_colors[a:z], UNSIGNED_BYTE, "VEC4", ARRAY_BUFFER, normalized=True
            ),
            id_attribute: b.accessor(
                geometry.point_feature_ids[a:z].astype("<f4"), FLOAT, "SCALAR", ARRAY_BUFFER
            ),
        }
        points: dict[str, Any] = {"attributes": attributes, "material": 1, "mode": POINTS}
        if a == 0 and with_attributes and geometry.point_attributes is not None and metadata:
            metadata = _point_metadata(b, points, geometry.point_attributes, metadata)
        points["extensions"] = {**extension.get("extensions", {}), **points.get("extensions", {})}
        if not points["extensions"]:
            del points["extensions"]
        primitives.append(points)
    if len(geometry.line_indices):
        n = len(geometry.line_positions)
        attributes = {
            "POSITION": _positions(b, geometry.line_positions, offset, qscale),
            "COLOR_0": b.accessor(
                np.tile(np.array([[80, 80, 80, 255]], dtype=np.uint8), (n, 1)),
                UNSIGNED_BYTE,
                "VEC4",
                ARRAY_BUFFER,
                normalized=True,
            ),
            id_attribute: b.accessor(
                geometry.line_feature_ids.astype("<f4"), FLOAT, "SCALAR", ARRAY_BUFFER
            ),
        }
        primitives.append(
            {
                "attributes": attributes,
                "indices": _indices(b, geometry.line_indices, quantized),
                "material": 1,
                "mode": LINES,
                **extension,
            }
        )
    used = [] if batch_ids else ["EXT_mesh_features", "KHR_mesh_quantization"]
    node: dict[str, Any] = {
        "mesh": 0,
        "translation": (_y_up(geometry.center[None])[0] + (offset if quantized else 0)).tolist(),
    }
    if quantized:
        node["scale"] = [scale, scale, scale]
    material = {
        "pbrMetallicRoughness": {
            "baseColorFactor": [1, 1, 1, 1],
            "metallicFactor": 0.0,
            "roughnessFactor": 1.0,
        }
    }
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "CIM"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [node],
        "meshes": [{"primitives": primitives}],  # dropped below when nothing can be drawn
        "materials": [{**material, "doubleSided": True}],
    }
    if len(geometry.point_positions) or len(geometry.line_indices) or geometry.textured:
        gltf["materials"].append({**material, "extensions": {"KHR_materials_unlit": {}}})
        used.append("KHR_materials_unlit")
    if geometry.textured:
        _textures(b, gltf, geometry.textured)
    if metadata:
        first = len(b.views)
        for data in metadata_views:
            b.view(data)
        gltf["extensions"] = {"EXT_structural_metadata": _renumber(metadata, first)}
        used.append("EXT_structural_metadata")
    if not primitives:  # only features without drawable geometry: a valid glTF with no mesh
        del gltf["meshes"]
        node.pop("mesh")
        node.pop("scale", None)
        node["name"] = "no drawable geometry"
        used = [u for u in used if u not in ("EXT_mesh_features", "KHR_mesh_quantization")]
        quantized = False
    if used:
        gltf["extensionsUsed"] = used
    if quantized:
        gltf["extensionsRequired"] = ["KHR_mesh_quantization"]
    binary = b.binary()
    # nothing to store (a 1.0 tile of undrawable objects): no buffer, as one may not be empty
    chunk = struct.pack("<I4s", len(binary), b"BIN\x00") + binary if binary else b""
    if binary:
        gltf["buffers"] = [{"byteLength": len(binary)}]
    if b.views:
        gltf["bufferViews"] = b.views
    if b.accessors:
        gltf["accessors"] = b.accessors
    text = orjson.dumps(gltf, option=orjson.OPT_SERIALIZE_NUMPY)
    text += b" " * ((-(20 + len(text))) % 8)  # with the binary padded to 8: a GLB of 8k bytes
    total = 12 + 8 + len(text) + len(chunk)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(text), b"JSON"),
            text,
            chunk,
        ]
    )


def _point_metadata(
    b: _Builder, primitive: dict[str, Any], a: PointAttributes, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Classification and intensity as vertex attributes of the points primitive, described by
    an EXT_structural_metadata property attribute (class `point`); returns the new metadata.
    Each value is padded to 4 bytes, as glTF wants vertex attributes aligned."""
    classes = np.zeros((len(a.classification), 4), dtype=np.uint8)
    classes[:, 0] = a.classification
    intensity = np.zeros((len(a.intensity), 2), dtype="<u2")
    intensity[:, 0] = a.intensity
    attributes = primitive["attributes"]
    attributes["_CLASSIFICATION"] = b.accessor(classes, UNSIGNED_BYTE, "SCALAR", ARRAY_BUFFER)
    attributes["_INTENSITY"] = b.accessor(intensity, UNSIGNED_SHORT, "SCALAR", ARRAY_BUFFER)
    primitive["extensions"] = {"EXT_structural_metadata": {"propertyAttributes": [0]}}
    out = orjson.loads(orjson.dumps(metadata))
    # the city's schema has the class already when the city has point clouds
    out["schema"]["classes"].setdefault(
        POINT_CLASS, {"name": "Point-cloud point", "properties": POINT_PROPERTIES}
    )
    out["propertyAttributes"] = [
        {
            "class": POINT_CLASS,
            "properties": {
                "classification": {"attribute": "_CLASSIFICATION"},
                "intensity": {"attribute": "_INTENSITY"},
            },
        }
    ]
    return out


def _textures(b: _Builder, gltf: dict[str, Any], parts: list[TexturedPart]) -> None:
    """Images (in the binary chunk), textures and one material per textured part (materials
    2, 3, ...; images shared by parts are stored once)."""
    images: dict[bytes, int] = {}
    for part in parts:
        if part.image not in images:
            images[part.image] = len(images)
            gltf.setdefault("images", []).append(
                {"bufferView": b.view(part.image), "mimeType": part.mime}
            )
        gltf["materials"].append(
            {
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": images[part.image]},
                    "metallicFactor": 0.0,
                    "roughnessFactor": 1.0,
                },
                "doubleSided": True,
            }
        )
    gltf["samplers"] = [
        {"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR, "wrapS": REPEAT, "wrapT": REPEAT}
    ]
    gltf["textures"] = [{"sampler": 0, "source": i} for i in range(len(images))]


def _renumber(metadata: dict[str, Any], first: int) -> dict[str, Any]:
    """Shift the buffer-view indices of property tables by `first` (in copies of the tables:
    the rest, the schema above all, is shared with the caller and left as it is)."""
    views = ("values", "stringOffsets", "arrayOffsets")
    tables = [
        {
            **table,
            "properties": {
                name: {k: v + first if k in views else v for k, v in prop.items()}
                for name, prop in table["properties"].items()
            },
        }
        for table in metadata.get("propertyTables", [])
    ]
    return {**metadata, "propertyTables": tables} if "propertyTables" in metadata else metadata


def read_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON and binary chunks of a GLB (for tests and tools)."""
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2 or total != len(data):
        raise ValueError("not a GLB 2.0 file")
    json_len, _ = struct.unpack_from("<I4s", data, 12)
    doc = orjson.loads(data[20 : 20 + json_len])
    rest = 20 + json_len
    binary = b""
    if rest < len(data):
        bin_len, _ = struct.unpack_from("<I4s", data, rest)
        binary = data[rest + 8 : rest + 8 + bin_len]
    return doc, binary


def write_b3dm(glb: bytes, batch_length: int, batch_table: dict[str, Any]) -> bytes:
    """3D Tiles 1.0 Batched 3D Model: header, feature table, JSON batch table, then the GLB."""

    def padded(data: bytes, start: int) -> bytes:
        return data + b" " * ((-(start + len(data))) % 8)

    header_size = 28
    feature = padded(json.dumps({"BATCH_LENGTH": batch_length}).encode(), header_size)
    batch = padded(
        json.dumps(batch_table, separators=(",", ":"), ensure_ascii=False).encode(),
        header_size + len(feature),
    )
    total = header_size + len(feature) + len(batch) + len(glb)
    header = struct.pack("<4s6I", b"b3dm", 1, total, len(feature), 0, len(batch), 0)
    return header + feature + batch + glb
