"""Helpers for tile tests: walking a tileset and reading GLB content back."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer

from tiles.gltf import read_glb
from tiles.meshopt import decompress

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests/tools/validate_gltf.mjs"
_TO_LLH = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def tiles_of(tileset: dict[str, Any]) -> list[dict[str, Any]]:
    """Every tile of a tileset, parents before children."""
    out: list[dict[str, Any]] = []

    def walk(tile: dict[str, Any]) -> None:
        out.append(tile)
        for child in tile.get("children", []):
            walk(child)

    walk(tileset["root"])
    return out


def validate_glbs(paths: list[Path]) -> dict[str, Any]:
    """The Khronos glTF validator's report for each file (node and the npm package required).

    The validator cannot read EXT_meshopt_compression streams, so each compressed file is also
    decoded (with meshoptimizer's decoder) and the decoded equivalent validated as well; its
    report is merged into the file's own.
    """
    decoded = {}
    for path in paths:
        data = path.read_bytes()
        plain = decompress(data)
        if plain is not data:
            twin = path.with_name(path.name + ".decoded.glb")
            twin.write_bytes(plain)
            decoded[str(twin)] = str(path)
    node = shutil.which("node")
    assert node, "node is not installed (make test installs it)"
    assert (ROOT / "node_modules/gltf-validator").exists(), "run `npm install` (make test does)"
    result = subprocess.run(
        [node, str(VALIDATOR), *map(str, paths), *decoded],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    reports: dict[str, Any] = json.loads(result.stdout)
    assert set(reports) == {*map(str, paths), *decoded}, "a file was not validated"
    for twin, original in decoded.items():
        report, own = reports.pop(twin), reports[original]
        own["errors"] += report["errors"]
        own["warnings"] += report["warnings"]
        own["messages"] += [f"(decoded) {m}" for m in report["messages"]]
        own["decoded"] = True
    return reports


def _accessor(doc: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """An accessor's values as floats (normalized integers mapped to [-1, 1] or [0, 1])."""
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(
        {5126: "<f4", 5125: "<u4", 5121: "u1", 5123: "<u2", 5122: "<i2", 5120: "i1"}[
            acc["componentType"]
        ]
    )
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[acc["type"]]
    stride = view.get("byteStride", width * dtype.itemsize) // dtype.itemsize
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    data = np.frombuffer(binary, dtype=dtype, count=acc["count"] * stride, offset=start)
    data = data.reshape(-1, stride)[:, :width].astype(np.float64)
    if acc.get("normalized"):
        top = {np.int8: 127, np.int16: 32767, np.uint8: 255, np.uint16: 65535}[dtype.type]
        data = np.maximum(data / top, -1.0)
    return data if width > 1 else data[:, 0]


def _ecef(doc: dict[str, Any], binary: bytes, primitive: dict[str, Any]) -> np.ndarray:
    """A primitive's vertices in Earth-centred coordinates (node transform applied)."""
    node = doc["nodes"][0]
    tx, ty, tz = node.get("translation", [0, 0, 0])
    scale = np.array(node.get("scale", [1, 1, 1]))
    p = _accessor(doc, binary, primitive["attributes"]["POSITION"]) * scale
    # glTF is Y-up: (x, y, z) there is (x, -z, y) in Earth-centred axes
    return np.column_stack((p[:, 0] + tx, -(p[:, 2] + tz), p[:, 1] + ty))


def textured_primitives(data: bytes) -> list[tuple[bytes, str, np.ndarray, np.ndarray]]:
    """Per textured primitive of a GLB: its image bytes, MIME type, Earth-centred vertices and
    TEXCOORD_0 (u, v)."""
    doc, binary = read_glb(decompress(data))
    out = []
    for primitive in doc.get("meshes", [{}])[0].get("primitives", []):
        if "TEXCOORD_0" not in primitive["attributes"]:
            continue
        material = doc["materials"][primitive["material"]]
        texture = doc["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
        image = doc["images"][texture["source"]]
        view = doc["bufferViews"][image["bufferView"]]
        data_ = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        uv = _accessor(doc, binary, primitive["attributes"]["TEXCOORD_0"])
        out.append((data_, image["mimeType"], _ecef(doc, binary, primitive), uv))
    return out


def glb_positions_lonlath(data: bytes) -> np.ndarray:
    """Every vertex of a GLB tile as longitude, latitude, ellipsoidal height."""
    doc, binary = read_glb(decompress(data))
    xyz = np.concatenate([_ecef(doc, binary, p) for p in doc["meshes"][0]["primitives"]])
    lon, lat, h = _TO_LLH.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    return np.column_stack((lon, lat, h))


def property_column(data: bytes, name: str) -> list[Any]:
    """The values of one STRING or numeric property of a GLB's property table."""
    doc, binary = read_glb(decompress(data))
    meta = doc["extensions"]["EXT_structural_metadata"]
    table = meta["propertyTables"][0]
    prop = table["properties"][name]
    spec = meta["schema"]["classes"][table["class"]]["properties"][name]
    view = doc["bufferViews"][prop["values"]]
    raw = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    if spec["type"] == "STRING":
        ov = doc["bufferViews"][prop["stringOffsets"]]
        offsets = np.frombuffer(
            binary, dtype="<u4", count=table["count"] + 1, offset=ov["byteOffset"]
        )
        return [raw[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    dtype = {"INT32": "<i4", "FLOAT64": "<f8", "INT64": "<i8"}[spec["componentType"]]
    return np.frombuffer(raw, dtype=dtype, count=table["count"]).tolist()
