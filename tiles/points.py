"""What a tile draws of point-cloud points: each point's colour, classification and intensity,
read from its stored source record (a LAS record, its layout kept in the geometry's structure).
Pure: records in, arrays out.

A point is drawn in its file's RGB colour. Where there is none, it is drawn in the colour of its
class: when its point format has no RGB fields (LAS formats 0, 1, 4, 6 and 9), and when a cloud
object's points (one cell of the file) all have RGB 0 0 0, which is how a file comes whose
format has colour fields that no one filled (drawn as they are, its cloud would be all black).

The classes are the ASPRS standard point classes of the LAS 1.4 specification (R15; formats
0-5 carry classes 0-31 in the low five bits of their classification byte). ASPRS defines the
classes, not their colours: `CLASS_COLOURS` is this project's palette in the customary hues
(never classified and unclassified light grey, ground brown, low, medium and high vegetation
ever darker greens, building brick red, low noise magenta and high noise red, water blue, rail
and road greys, wires amber, transmission towers purple, bridge decks lavender); classes without
a colour of their own (8 and 12, reserved in LAS 1.4, 16 wire-structure connector, 19-63
reserved, 64-255 user-defined) are pale yellow."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

# ASPRS standard point classes (LAS 1.4 R15) -> the colour a point without RGB is drawn in
CLASS_COLOURS = {
    0: (170, 170, 170),  # created, never classified
    1: (190, 190, 190),  # unclassified
    2: (166, 123, 91),  # ground
    3: (183, 224, 139),  # low vegetation
    4: (112, 181, 77),  # medium vegetation
    5: (46, 125, 50),  # high vegetation
    6: (214, 96, 77),  # building
    7: (255, 0, 255),  # low point (noise)
    9: (66, 146, 198),  # water
    10: (120, 120, 120),  # rail
    11: (90, 90, 90),  # road surface
    13: (255, 200, 0),  # wire guard
    14: (255, 170, 0),  # wire conductor
    15: (130, 90, 170),  # transmission tower
    17: (150, 150, 200),  # bridge deck
    18: (255, 0, 0),  # high noise
}
OTHER_CLASS = (230, 230, 120)
_PALETTE = np.array([CLASS_COLOURS.get(c, OTHER_CLASS) for c in range(256)], dtype=np.uint8)


@dataclass
class PointAttributes:
    """Per point: RGB colour, classification and intensity."""

    colours: NDArray[np.uint8]  # (n, 3)
    classification: NDArray[np.uint8]
    intensity: NDArray[np.uint16]


@lru_cache(maxsize=64)
def _dtype(fields: tuple[tuple[str, str], ...]) -> np.dtype[np.void]:
    """A record layout's NumPy type, built once (a file's objects share one)."""
    return np.dtype(list(fields))


def las_attributes(records: bytes, layout: dict[str, Any]) -> PointAttributes:
    """Colour (the file's RGB; by class where the format has none or every point of `records`
    is 0 0 0), classification and intensity of LAS records."""
    dtype = _dtype(tuple((name, kind) for name, kind in layout["dtype"]))
    data = np.frombuffer(records, dtype=dtype)
    names = set(dtype.names or ())
    if "classification" in names:  # point formats 6-10: a byte of its own
        classes = data["classification"].astype(np.uint8)
    else:  # formats 0-5: the low five bits
        classes = (data["raw_classification"] & 0x1F).astype(np.uint8)
    rgb = None
    if {"red", "green", "blue"} <= names:
        rgb = np.column_stack((data["red"], data["green"], data["blue"])).astype(np.uint16)
    if rgb is not None and rgb.any():
        # LAS says 16 bits, but many files store 8-bit values as they are (the reader decided
        # which for the whole file; older rows decide here)
        bits = layout.get("rgb_bits") or (16 if rgb.max(initial=0) > 255 else 8)
        colours = (rgb >> 8 if bits == 16 else rgb).astype(np.uint8)
    else:
        colours = _PALETTE[classes]
    return PointAttributes(colours, classes, data["intensity"].astype(np.uint16))
