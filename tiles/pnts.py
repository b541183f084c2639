"""3D Tiles 1.0 point clouds: the Point Cloud format (pnts) and, for tiles that hold both
meshes and points, the Composite format (cmpt) around a b3dm and a pnts. Pure: arrays in, bytes
out."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tiles.points import PointAttributes


def _padded_json(doc: dict[str, Any], start: int) -> bytes:
    """JSON padded with spaces so that what follows starts on an 8-byte boundary."""
    data = json.dumps(doc, separators=(",", ":")).encode()
    return data + b" " * ((-(start + len(data))) % 8)


def _padded(data: bytes) -> bytes:
    return data + b"\x00" * ((-len(data)) % 8)


def write_pnts(
    center: NDArray[np.float64],
    positions: NDArray[np.float32],
    colours: NDArray[np.uint8],
    attributes: PointAttributes | None,
) -> bytes:
    """A pnts tile: positions (float32, Earth-centred, relative to RTC_CENTER), RGB, and per
    point a `Classification` and `Intensity` in the batch table when the points have them."""
    n = len(positions)
    feature_bin = np.ascontiguousarray(positions, dtype="<f4").tobytes()
    rgb_at = len(feature_bin)
    feature_bin += np.ascontiguousarray(colours[:, :3], dtype=np.uint8).tobytes()
    feature = {
        "POINTS_LENGTH": n,
        "RTC_CENTER": [float(v) for v in center],
        "POSITION": {"byteOffset": 0},
        "RGB": {"byteOffset": rgb_at},
    }
    batch: dict[str, Any] = {}
    batch_bin = b""
    if attributes is not None:
        classes = attributes.classification.astype(np.uint8).tobytes()
        intensity_at = len(classes) + (-len(classes)) % 2
        batch = {
            "Classification": {"byteOffset": 0, "componentType": "UNSIGNED_BYTE", "type": "SCALAR"},
            "Intensity": {
                "byteOffset": intensity_at,
                "componentType": "UNSIGNED_SHORT",
                "type": "SCALAR",
            },
        }
        batch_bin = (
            classes.ljust(intensity_at, b"\x00") + attributes.intensity.astype("<u2").tobytes()
        )
    feature_json = _padded_json(feature, 28)
    feature_bin = _padded(feature_bin)
    batch_json = _padded_json(batch, 28 + len(feature_json) + len(feature_bin)) if batch else b""
    batch_bin = _padded(batch_bin) if batch else b""
    total = 28 + len(feature_json) + len(feature_bin) + len(batch_json) + len(batch_bin)
    header = struct.pack(
        "<4s6I",
        b"pnts",
        1,
        total,
        len(feature_json),
        len(feature_bin),
        len(batch_json),
        len(batch_bin),
    )
    return header + feature_json + feature_bin + batch_json + batch_bin


def write_cmpt(tiles: list[bytes]) -> bytes:
    """A composite tile of inner tiles (b3dm and pnts as written here: each a multiple of 8
    bytes long, so that every one starts on an 8-byte boundary)."""
    assert all(len(t) % 8 == 0 for t in tiles), "inner tiles must be 8-byte multiples"
    total = 16 + sum(len(t) for t in tiles)
    return struct.pack("<4sIII", b"cmpt", 1, total, len(tiles)) + b"".join(tiles)
