"""What a tile draws of point-cloud points: each point's colour, classification and intensity,
read from its stored source record (a LAS record, its layout kept in the geometry's structure).
Pure: records in, arrays out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# ASPRS standard classes (LAS 1.4) drawn in customary colours when a cloud has no RGB
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


def las_attributes(records: bytes, layout: dict[str, Any]) -> PointAttributes:
    """Colour (the file's RGB, else by class), classification and intensity of LAS records."""
    dtype = np.dtype([(name, kind) for name, kind in layout["dtype"]])
    data = np.frombuffer(records, dtype=dtype)
    names = set(dtype.names or ())
    if "classification" in names:  # point formats 6-10: a byte of its own
        classes = data["classification"].astype(np.uint8)
    else:  # formats 0-5: the low five bits
        classes = (data["raw_classification"] & 0x1F).astype(np.uint8)
    if {"red", "green", "blue"} <= names:
        rgb = np.column_stack((data["red"], data["green"], data["blue"])).astype(np.uint16)
        # LAS says 16 bits, but many files store 8-bit values as they are (the reader decided
        # which for the whole file; older rows decide here)
        bits = layout.get("rgb_bits") or (16 if rgb.max(initial=0) > 255 else 8)
        colours = (rgb >> 8 if bits == 16 else rgb).astype(np.uint8)
    else:
        colours = _PALETTE[classes]
    return PointAttributes(colours, classes, data["intensity"].astype(np.uint16))
