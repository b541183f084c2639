"""What a kept tile is known by: the key of its row in `tile_cache` has a `variant`, a digest of
the settings that change a content's bytes, and the row a `made_with` stamp, a digest of the
code that wrote it and of its city's property schema. Pure but for reading the source of the
modules that write contents (once per process)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from functools import cache
from pathlib import Path

import orjson

from cim.settings import TileSettings
from tiles.properties import PropertySchema

# TileSettings fields that change the bytes of a content, by format; every other field is in
# NEUTRAL_SETTINGS (a test checks that each field is in one of them)
BYTE_SETTINGS = {"glb": ("meshopt",), "b3dm": ()}
# content_max_kb: only the split cells of implicit tilesets depend on it, and they are kept in
# tile_cache under a format and variant of their own (tiles.parts.cell_variant)
NEUTRAL_SETTINGS = ("memory_mb", "content_max_kb")
# what writes content bytes: these modules' source and these libraries' versions
WRITERS = (
    "tiles.atlas",
    "tiles.content",
    "tiles.gltf",
    "tiles.meshopt",
    "tiles.metadata",
    "tiles.pnts",
    "tiles.points",
    "tiles.properties",
    "cim.attributes",
    "cim.crs",  # points are made Earth-centred with its conversion (and what it imports)
    "cim.crs_names",
    "cim.db.scenarios",  # a design scheme's view, which its touched tiles read
    "cim.heights",
    "cim.geometry",
    "cim.images",
    "cim.monotone",
    "cim.surfaces",
    "cim.tiling",  # which objects are point clouds
)
LIBRARIES = ("meshopt", "numpy", "pillow")


def variant(settings: TileSettings, fmt: str) -> str:
    """A digest of the settings that change the bytes of `fmt` contents (part of the key of a
    kept tile)."""
    chosen = {name: getattr(settings, name) for name in BYTE_SETTINGS[fmt]}
    return hashlib.sha256(orjson.dumps(chosen, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@cache
def code_revision() -> str:
    """A digest of the source of the modules that write contents and of the versions of the
    libraries they use: a kept tile made by other code is made again, with no version number
    for anyone to forget to raise."""
    digest = hashlib.sha256()
    for name in WRITERS:
        source = importlib.import_module(name).__file__
        digest.update(Path(source).read_bytes() if source else name.encode())
    for library in LIBRARIES:
        digest.update(importlib.metadata.version(library).encode())
    return digest.hexdigest()[:16]


def made_with(schema: PropertySchema) -> str:
    """What a kept tile must have been made with to be served: this code, this schema."""
    return hashlib.sha256(f"{code_revision()} {schema.digest}".encode()).hexdigest()[:16]
