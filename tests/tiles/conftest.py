"""Helpers for tile tests: walking a tileset, reading GLB content back, and the validators (the
Khronos glTF validator on GLB files, the official CesiumGS 3D Tiles validator on tilesets)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Engine

from api.app import create_app
from cim.settings import TileSettings
from tiles.gltf import read_glb
from tiles.meshopt import decompress

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests/tools/validate_gltf.mjs"
TILES_VALIDATOR = ROOT.parent / "shared/tools/3d-tiles-validator/3d-tiles-validator.cjs"
# the forms of a tileset the service makes: 3D Tiles 1.1 with meshopt (the default; the
# validator checks its metadata but cannot decode its glTF), 1.1 plain (CIM_TILES_MESHOPT=0,
# fully checked), and 1.0
FORMS = {"meshopt": ("1.1", True), "plain": ("1.1", False), "1.0": ("1.0", False)}
_TO_LLH = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def unversioned(tileset: dict[str, Any]) -> dict[str, Any]:
    """A served tileset as `cim tiles export` writes it: content URIs without the content
    version the service adds (`?v=…`, which makes them immutable)."""
    doc = copy.deepcopy(tileset)
    for tile in tiles_of(doc):
        if "content" in tile:
            tile["content"]["uri"] = tile["content"]["uri"].partition("?")[0]
    return doc


def download_tileset(client: TestClient, city: str, out: Path, version: str = "1.1") -> int:
    """Write a city's tileset as served over HTTP (tileset.json, and every content at its
    relative URI) under `out`; returns how many contents."""
    # the explicit tileset, which dense cities are not served by default (tests/tiles/
    # test_implicit*.py validate the implicit ones)
    params = {"version": version, "implicit": "false"}
    r = client.get(f"/collections/{city}/3dtiles/tileset.json", params=params)
    assert r.status_code == 200, r.text
    out.mkdir(parents=True, exist_ok=True)
    (out / "tileset.json").write_bytes(r.content)
    uris = [t["content"]["uri"] for t in tiles_of(r.json()) if "content" in t]
    for uri in uris:
        got = client.get(f"/collections/{city}/3dtiles/{uri}")
        assert got.status_code == 200, got.text
        (out / uri).parent.mkdir(parents=True, exist_ok=True)
        (out / uri).write_bytes(got.content)
    return len(uris)


def validate_tilesets(root: Path) -> dict[Path, dict[str, Any]]:
    """The official 3D Tiles validator's report on every tileset.json under `root`, by path
    (one run of node for all; node and ../shared/tools are part of the test bed)."""
    node = shutil.which("node")
    assert node, "node is not installed (make test installs it)"
    assert TILES_VALIDATOR.exists(), f"missing {TILES_VALIDATOR} (../shared/tools)"
    tilesets = sorted(root.rglob("tileset.json"))
    assert tilesets, f"no tileset under {root}"
    result = subprocess.run(
        [node, str(TILES_VALIDATOR), "--tilesetsDirectory", str(root), "--writeReports"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    reports = {}
    for path in tilesets:
        report = path.with_name("tileset.report.json")
        assert report.exists(), f"the validator wrote no report for {path}"
        reports[path] = json.loads(report.read_text())
    return reports


def _problems(issues: Iterable[dict[str, Any]], depth: int = 0) -> list[str]:
    """Errors and warnings of a report, with their causes, one line each."""
    lines = []
    for issue in issues:
        if issue["severity"] in ("ERROR", "WARNING"):
            lines.append(f"{'  ' * depth}{issue['type']} {issue['path']}: {issue['message']}")
        lines += _problems(issue.get("causes", []), depth + 1)
    return lines


def assert_valid_tilesets(root: Path) -> dict[Path, dict[str, Any]]:
    """Every tileset under `root` passes the official 3D Tiles validator with 0 errors; returns
    the reports."""
    reports = validate_tilesets(root)
    failing = {
        str(path.relative_to(root)): _problems(report["issues"])[:20]
        for path, report in reports.items()
        if report["numErrors"]
    }
    assert not failing, json.dumps(failing, indent=1, ensure_ascii=False)
    return reports


def assert_served_tilesets_valid(
    engine: Engine, cities: Iterable[str], out: Path
) -> dict[Path, dict[str, Any]]:
    """Each city's tileset in every form the service makes (`FORMS`), served over HTTP by an
    app of its own, passes the official 3D Tiles validator; returns the reports."""
    cities = list(cities)
    for form, (version, meshopt) in FORMS.items():
        client = TestClient(create_app(engine=engine, tile_settings=TileSettings(meshopt=meshopt)))
        for city in cities:
            assert download_tileset(client, city, out / form / city, version) > 0
    reports = assert_valid_tilesets(out)
    assert len(reports) == len(cities) * len(FORMS)
    return reports


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
    """The values of one property of a GLB's property table (None where it has noData)."""
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
        values = [raw[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    elif spec["type"] == "BOOLEAN":
        bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        values = [bool(b) for b in bits[: table["count"]]]
    else:
        dtype = {"INT32": "<i4", "FLOAT64": "<f8", "INT64": "<i8"}[spec["componentType"]]
        values = np.frombuffer(raw, dtype=dtype, count=table["count"]).tolist()
    if "noData" in spec:  # a value equal to noData is no value
        values = [None if v == spec["noData"] else v for v in values]
    return values
